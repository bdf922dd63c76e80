-- Give every order a public, non-guessable id. Hazard: gen_random_uuid() is volatile,
-- so the default cannot be stored as metadata: orders is rewritten under an
-- ACCESS EXCLUSIVE lock (reads and writes blocked) and every row gets a new uuid.
ALTER TABLE public.orders ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid();
