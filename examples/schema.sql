-- Schema of the example function (examples/handler.py). Load it once, e.g.
--   mysql -h <host> -u <admin> -p <database> < examples/schema.sql
-- The handler never creates tables itself: DDL on every cold start would cost a statement per environment
-- and needs privileges the application user should not have.
CREATE TABLE IF NOT EXISTS orders (
    id         BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer   VARCHAR(64)      NOT NULL,
    item       VARCHAR(64)      NOT NULL,
    quantity   INT UNSIGNED     NOT NULL DEFAULT 1,
    created_at TIMESTAMP(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY orders_by_customer (customer, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
