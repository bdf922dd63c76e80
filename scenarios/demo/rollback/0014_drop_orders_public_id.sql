-- Rollback of 0006: orders.public_id goes, and with it every public id handed out since
-- the release (links in e-mails, receipts): they do not come back with a re-release.
ALTER TABLE public.orders DROP COLUMN public_id;
