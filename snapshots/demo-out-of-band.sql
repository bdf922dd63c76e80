-- Changes made by hand in production, outside any migration: what
-- `rehearse drift` finds (make demo-drift builds target/demo/drift.dump
-- from the demo with these applied; scenarios/drift-demo.yaml rehearses it).

-- A DBA's index, added during an incident and never written as a migration.
CREATE INDEX orders_user_status_by_hand_idx ON public.orders (user_id, status);

-- A hot fix: new users start on the pro plan, changed in production only.
ALTER TABLE public.users ALTER COLUMN plan SET DEFAULT 'pro';
