-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d):
-- one database per service, owned by POSTGRES_USER (verticals).
CREATE DATABASE news_monitor;
CREATE DATABASE support_bot;
CREATE DATABASE recommender;
-- the support bot keeps its vectors in its database (pgvector); the service creates the
-- extension itself when its user may, this does it for a user that may not
\connect support_bot
CREATE EXTENSION IF NOT EXISTS vector;
