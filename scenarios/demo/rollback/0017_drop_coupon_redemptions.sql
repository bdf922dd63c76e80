-- Rollback of 0003: the coupon redemptions table goes, with every redemption recorded
-- since the release.
DROP TABLE public.coupon_redemptions;
