-- The 20 products with the most revenue, with their units and share of all revenue.
SELECT product_id, product_name, category,
       sum(units) AS units,
       sum(revenue) AS revenue,
       sum(revenue) / sum(sum(revenue)) OVER () AS revenue_share
FROM daily_sales
GROUP BY product_id, product_name, category
ORDER BY revenue DESC
LIMIT 20
