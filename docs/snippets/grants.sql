CREATE USER 'orders_app'@'%' IDENTIFIED BY '<password>' WITH MAX_USER_CONNECTIONS 200;
GRANT SELECT, INSERT ON shop.orders TO 'orders_app'@'%';
