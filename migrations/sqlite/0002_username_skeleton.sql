-- Look-alike usernames: as `migrations/postgres/0002_username_skeleton.sql`. Each user
-- also has `username_skeleton`, `Username::skeleton()` of its name (the Unicode TR 39
-- confusable skeleton of its case-folded NFKC form), computed by the application. A new
-- name whose skeleton is taken is refused as taken.
--
-- Rows from before this migration get their skeleton when the server starts (oldest
-- first, see `users::backfill_skeletons`); of two that look alike the older gets it and
-- the younger keeps null, its name and its login (several nulls are not a conflict).
alter table users add column username_skeleton text;

create unique index users_username_skeleton_key on users (username_skeleton);
