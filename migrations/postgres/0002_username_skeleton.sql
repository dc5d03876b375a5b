-- Look-alike usernames (issue 13): `victim` and `vіctim` (with a Cyrillic `і`) were two
-- users. Each user now also has `username_skeleton`, `Username::skeleton()` of its name:
-- the Unicode TR 39 confusable skeleton of its case-folded NFKC form, computed by the
-- application (no SQL function can). A new name whose skeleton is taken is refused as
-- taken, like one whose `username_key` is.
--
-- Rows from before this migration get their skeleton when the server starts (oldest
-- first, see `users::backfill_skeletons`). Two such users that look alike cannot both
-- have it: the older one does; the younger keeps a null skeleton, and keeps its name
-- and its login (unique indexes let several rows be null).
alter table users add column username_skeleton text;

create unique index users_username_skeleton_key on users (username_skeleton);
