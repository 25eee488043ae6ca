-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d):
-- one database per service, owned by POSTGRES_USER (verticals).
CREATE DATABASE news_monitor;
CREATE DATABASE support_bot;
CREATE DATABASE recommender;
