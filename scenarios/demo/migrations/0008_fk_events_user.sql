-- Enforce events.user_id -> users.id. Hazard: added without NOT VALID, so the whole of
-- events is scanned to validate it while SHARE ROW EXCLUSIVE locks on events and users
-- block writes to both (safer: ADD ... NOT VALID, then VALIDATE CONSTRAINT separately).
ALTER TABLE public.events
    ADD CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users (id);
