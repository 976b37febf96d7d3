-- Units per product and UTC hour of the day, on weekdays and on weekends, from the orders as
-- they stand between two days (first included, last excluded, as 'YYYY-MM-DD'): what each
-- series' intraday profile is learned from. day_of_week is ISO (Monday 1 ... Sunday 7).
SELECT product_id, category,
       day_of_week(order_ts) >= 6 AS weekend,
       hour(order_ts) AS hour,
       sum(quantity) AS units
FROM orders_current
WHERE CAST(order_ts AS DATE) >= CAST(? AS DATE) AND CAST(order_ts AS DATE) < CAST(? AS DATE)
GROUP BY product_id, category, day_of_week(order_ts) >= 6, hour(order_ts)
ORDER BY product_id, weekend, hour
