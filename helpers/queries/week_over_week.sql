-- Revenue per week (weeks start on Monday) and its growth over the week before.
WITH weekly AS (
    SELECT date_trunc('week', ds) AS week, sum(revenue) AS revenue
    FROM daily_sales
    GROUP BY date_trunc('week', ds)
)
SELECT week, revenue,
       lag(revenue) OVER (ORDER BY week) AS previous_revenue,
       (revenue - lag(revenue) OVER (ORDER BY week))
           / nullif(lag(revenue) OVER (ORDER BY week), 0) AS growth
FROM weekly
ORDER BY week
