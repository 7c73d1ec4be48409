-- The key store of every zone on this one-host setup (rights/README.md): one database per residency
-- zone, owned by the role the compose file's POSTGRES_USER creates. In production each zone's key store
-- is a PostgreSQL inside that zone (policy section 6).
CREATE DATABASE keys_cn;
CREATE DATABASE keys_ru;
CREATE DATABASE keys_in;
CREATE DATABASE keys_row;
