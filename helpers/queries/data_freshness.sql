-- How fresh each partition of the change log is: its newest change and how many it holds.
SELECT year, month, day, max(event_ts) AS latest_event, count(*) AS events
FROM orders_changes
GROUP BY year, month, day
ORDER BY year, month, day
