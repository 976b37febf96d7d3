-- Revenue and orders per category and sales channel.
SELECT category, channel,
       sum(quantity * unit_price) AS revenue,
       count(*) AS orders
FROM orders_current
GROUP BY category, channel
ORDER BY revenue DESC
