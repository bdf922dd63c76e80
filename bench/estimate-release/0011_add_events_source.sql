-- Catalog-only: a column with a constant default is stored as metadata
-- (PostgreSQL 11+), so events is not rewritten, however big.
ALTER TABLE public.events ADD COLUMN source text DEFAULT 'web';
