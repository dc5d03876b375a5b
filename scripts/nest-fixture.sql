-- A Nest.js messenger database to measure `server import nest` with: the old API's four
-- tables (as NEST-DATABASE.md describes them) filled with 1,000 users, 1,000 chats of
-- 10 members each and :messages messages (default 1,000,000), all valid under our rules.
-- Ids are UUIDs made from md5 hashes, so two fills are identical.
--
--   createdb -h 127.0.0.1 -U postgres nest_bench
--   psql -h 127.0.0.1 -U postgres -d nest_bench -v messages=1000000 -f scripts/nest-fixture.sql
\set ON_ERROR_STOP on
\if :{?messages}
\else
  \set messages 1000000
\endif

\ir nest-schema.sql

-- Any argon2id PHC string will do: nobody logs in during the measurement.
insert into "User" (id, username, password, "createdAt")
select md5('user' || i)::uuid::text, 'user' || i || '@example.com',
       '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
       timestamp '2022-01-01' + i * interval '1 second'
from generate_series(0, 999) as i;

-- Chat c is owned by user c; its members are users c, c+1, …, c+9 (mod 1000).
insert into "Chat" (id, "ownerId", name, "createdAt")
select md5('chat' || c)::uuid::text, md5('user' || c)::uuid::text, 'chat ' || c,
       timestamp '2022-02-01' + c * interval '1 second'
from generate_series(0, 999) as c;

insert into "ChatMember" ("chatId", "userId", "joinedAt")
select md5('chat' || c)::uuid::text, md5('user' || ((c + k) % 1000))::uuid::text,
       timestamp '2022-02-01' + c * interval '1 second' + k * interval '1 minute'
from generate_series(0, 999) as c, generate_series(0, 9) as k;

-- Message i goes to chat i % 1000, from one of its members, 10 ms after message i - 1.
insert into "Message" (id, "chatId", "senderId", content, "createdAt")
select md5('message' || i)::uuid::text, md5('chat' || (i % 1000))::uuid::text,
       md5('user' || ((i % 1000 + i % 10) % 1000))::uuid::text,
       'message ' || i || ': the quick brown fox jumps over the lazy dog',
       timestamp '2022-03-01' + i * interval '10 milliseconds'
from generate_series(0, :messages - 1) as i;

analyze;
