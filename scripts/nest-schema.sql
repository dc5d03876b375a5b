-- The Nest.js messenger's tables, as Prisma made them (after its third migration), as
-- NEST-DATABASE.md describes them: what `server import nest` reads. Used by the import's
-- end-to-end test and by nest-fixture.sql.
create table "_prisma_migrations" (id varchar(36) primary key, migration_name varchar(255) not null);
create table "User" (
    id          text primary key,
    username    text not null unique,
    password    text not null,
    "createdAt" timestamp(3) not null default current_timestamp
);
create table "Chat" (
    id          text primary key,
    "ownerId"   text not null references "User" (id),
    name        text not null,
    "createdAt" timestamp(3) not null default current_timestamp
);
create table "ChatMember" (
    "chatId"   text not null references "Chat" (id),
    "userId"   text not null references "User" (id),
    "joinedAt" timestamp(3) not null default current_timestamp,
    primary key ("chatId", "userId")
);
create table "Message" (
    id          text primary key,
    "chatId"    text not null references "Chat" (id),
    "senderId"  text not null references "User" (id),
    content     text not null,
    "createdAt" timestamp(3) not null default current_timestamp
);
