-- Units per product and hour of the day on the shop's clock, on its weekdays and weekends,
-- from the orders as they stand between two UTC days (first included, last excluded, as
-- 'YYYY-MM-DD'): what each series' intraday profile is learned from. Parameters: the shop's
-- time zone (an IANA name, 'UTC' for the UTC clock), then the two days. order_ts is UTC (the
-- session zone, as Athena's is); at_timezone shows it on the shop's wall clock (AT TIME ZONE
-- takes only a literal in Trino, never a parameter). day_of_week is ISO (Monday 1 ... Sunday 7).
SELECT product_id, category,
       day_of_week(local_ts) >= 6 AS weekend,
       hour(local_ts) AS hour,
       sum(quantity) AS units
FROM (
    SELECT product_id, category, quantity, at_timezone(order_ts, ?) AS local_ts
    FROM orders_current
    WHERE CAST(order_ts AS DATE) >= CAST(? AS DATE) AND CAST(order_ts AS DATE) < CAST(? AS DATE)
)
GROUP BY product_id, category, day_of_week(local_ts) >= 6, hour(local_ts)
ORDER BY product_id, weekend, hour
