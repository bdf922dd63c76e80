-- Index events by user for the new "activity" page. Hazard: a plain (non-concurrent)
-- CREATE INDEX holds a SHARE lock on events, the biggest table, for the whole build:
-- every INSERT into events is blocked until it finishes.
CREATE INDEX events_user_id_idx ON public.events (user_id);
