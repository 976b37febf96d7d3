-- Revenue, units and orders per day, all products together.
SELECT ds, sum(revenue) AS revenue, sum(units) AS units, sum(orders) AS orders
FROM daily_sales
GROUP BY ds
ORDER BY ds
