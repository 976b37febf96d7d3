-- The orders as they stand: the latest event of every order by stream sequence number
-- (event_seq), which also removes duplicate deliveries; cancelled orders are left out.
-- attributes: the order's other attributes as AttributeValue JSON text, NULL if none.
SELECT order_id, order_ts, customer_id, product_id, product_name, category, channel,
       quantity, unit_price, event_seq, event_ts, attributes
FROM (
    SELECT *, row_number() OVER (PARTITION BY order_id ORDER BY event_seq DESC) AS newest
    FROM orders_changes
) AS events
WHERE newest = 1 AND event_name <> 'REMOVE'
