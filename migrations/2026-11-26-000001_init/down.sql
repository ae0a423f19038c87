DROP TABLE vector_outbox;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE memories;
DROP TABLE events;
DROP TABLE tasks;
DROP TABLE users;
