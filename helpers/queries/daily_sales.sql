-- Units, revenue and orders per day and product, from the orders as they stand.
SELECT CAST(order_ts AS DATE) AS ds, product_id, product_name, category,
       sum(quantity) AS units,
       sum(quantity * unit_price) AS revenue,
       count(*) AS orders
FROM orders_current
GROUP BY CAST(order_ts AS DATE), product_id, product_name, category
