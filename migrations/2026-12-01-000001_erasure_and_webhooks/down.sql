DROP TABLE webhook_deliveries;
DROP TABLE erased_users;
