-- Backfill users.last_seen_at from each user's latest event or order. A data migration:
-- one big UPDATE that row-locks every active user and writes WAL for each updated row.
UPDATE public.users AS u
SET last_seen_at = s.last_seen
FROM (
    SELECT user_id, max(ts) AS last_seen
    FROM (
        SELECT user_id, occurred_at AS ts FROM public.events
        UNION ALL
        SELECT user_id, created_at AS ts FROM public.orders
    ) AS activity
    GROUP BY user_id
) AS s
WHERE s.user_id = u.id
  AND u.last_seen_at IS NULL;
