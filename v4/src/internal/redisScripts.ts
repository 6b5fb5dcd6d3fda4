/**
 * The Lua scripts of `RedisSessionStore`: one script per primitive, each atomic on its own. Every script runs within
 * one slot group (one Redis Cluster hash slot), so a session's keys, its family and its group's indexes change
 * together. Time is the store's (`now`, passed in), never Redis's `TIME`: the store's clock decides expiry, and
 * Redis's own TTLs are only a safety net set a margin past it.
 *
 * Every script takes the same first arguments (`ARGV[1..4]`: nonce, group base, TTL margin, now; a `bare` one only the
 * nonce) and returns the nonce first: the client checks it, so a reply can never be taken for another command's.
 *
 * The layout of one slot group (`base` is `<prefix>{<2 hex digits>}`, the first byte of the ids it holds):
 *
 * - `<base>r:<id>`: a hash per key (row): `v` value, `e` expiresAt, `n` version, `f` family, `c` createdAt,
 *   `l` lastSeenAt, `s`/`a`/`m` owner, `r` rotated, `d` ended (a tombstone);
 * - `<base>m:<family>`: a set of the ids of a session's keys;
 * - `<base>f`: a sorted set of the group's families (lexicographic: family order, for paging);
 * - `<base>x`: a sorted set of `<id><family>` by expiresAt (for cleanup).
 *
 * A subject's index, `<prefix>{u:<SHA-256(subject)>}`, is a hash family → token in a slot of its own; the cleanup
 * lease, `<prefix>{cleanup}`, the time of the last claim of the background cleanup.
 */
import { createHash } from "node:crypto"

const prelude = `
local nonce, base, margin, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local famZ, expZ = base .. 'f', base .. 'x'
local function rowKey(id) return base .. 'r:' .. id end
local function membersKey(fam) return base .. 'm:' .. fam end
local function ttlOf(exp)
  local left = tonumber(exp) - now
  if left < 0 then left = 0 end
  return math.floor(left) + margin
end
-- Raises a key's TTL to at least ms (a key without one gets it); never lowers it.
local function keepFor(key, ms)
  local left = redis.call('PTTL', key)
  if left == -1 or (left >= 0 and left < ms) then redis.call('PEXPIRE', key, ms) end
end
-- Files a row of a family under its expiry, and gives every key involved its safety-net TTL.
local function index(id, fam, exp)
  local ttl = ttlOf(exp)
  redis.call('ZADD', expZ, exp, id .. fam)
  redis.call('SADD', membersKey(fam), id)
  redis.call('ZADD', famZ, 0, fam)
  redis.call('PEXPIRE', rowKey(id), ttl)
  keepFor(membersKey(fam), ttl)
  keepFor(famZ, ttl)
  keepFor(expZ, ttl)
end
local function putOwner(key, s, a, m)
  redis.call('HDEL', key, 's', 'a', 'm')
  if s ~= '' then redis.call('HSET', key, 's', s) end
  if a ~= '' then redis.call('HSET', key, 'a', a) end
  if m ~= '' then redis.call('HSET', key, 'm', m) end
end
-- Ends a row: a tombstone that keeps only its expiry and family.
local function finish(key)
  redis.call('HSET', key, 'd', '1', 'v', '')
  redis.call('HDEL', key, 's', 'a', 'm')
  redis.call('HINCRBY', key, 'n', 1)
end
-- Why a row (fields e, r, d first) cannot be changed at now, or nil when it is live.
local function refusal(row)
  if not row[1] or row[3] then return 'missing' end
  if row[2] then return 'rotated' end
  if tonumber(row[1]) < now then return 'expired' end
  return nil
end
-- The current key of a family (not rotated, not ended): its id and fields e, s, a, m, c, l.
local function current(fam)
  for _, id in ipairs(redis.call('SMEMBERS', membersKey(fam))) do
    local row = redis.call('HMGET', rowKey(id), 'e', 'r', 'd', 's', 'a', 'm', 'c', 'l')
    if row[1] and not row[2] and not row[3] then return id, row end
  end
  return nil, nil
end
local function info(fam, row)
  return fam, row[4], row[5], row[6], row[7], row[1], row[8]
end
`

/** A script: its source and the SHA-1 that `EVALSHA` names it by. */
export interface Script {
  readonly name: string
  readonly source: string
  readonly sha: string
  /** Takes only the nonce before its own arguments (no group base, margin or time). */
  readonly bare: boolean
}

/**
 * A script with the prelude's helpers and arguments, or (`bare`) with only the nonce before its own (`ARGV[2]` on):
 * the hot `find` and the subject index pay for nothing else.
 */
const script = (name: string, body: string, bare = false): Script => {
  const source = (bare ? "local nonce = ARGV[1]\n" : prelude) + body
  return { name, source, sha: createHash("sha1").update(source).digest("hex"), bare }
}

/** KEYS[1] row. Its fields, unless there is no row or it ended. */
export const find = script("find", `
local r = redis.call('HMGET', KEYS[1], 'v', 'e', 'n', 'r', 'd', 's', 'a', 'f')
if not r[2] or r[5] then return {nonce} end
return {nonce, r[1], r[2], r[3], r[4] and '1' or '0', r[6], r[7], r[8]}
`, true)

const create = `
local function create(key, id, fam, value, exp, s, a, m)
  redis.call('DEL', key)
  redis.call('HSET', key, 'v', value, 'e', exp, 'n', 1, 'f', fam, 'c', ARGV[4], 'l', ARGV[4])
  putOwner(key, s, a, m)
  index(id, fam, exp)
end
`

/** KEYS[1] row. ARGV: id, value, expiresAt, subject, audience, metadata ('' for none). A new session. */
export const insert = script("insert", `${create}
create(KEYS[1], ARGV[5], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
return {nonce}
`)

/** KEYS[1] row. ARGV: id, value, expiresAt. Replaces a live row, creates a missing one, or says why not. */
export const upsert = script("upsert", `${create}
local id, value, exp = ARGV[5], ARGV[6], ARGV[7]
local row = redis.call('HMGET', KEYS[1], 'e', 'r', 'd', 'v', 'f')
if not row[1] then
  create(KEYS[1], id, id, value, exp, '', '', '')
  return {nonce, 'written'}
end
local refused = refusal(row)
if refused then return {nonce, refused} end
if row[4] ~= value then redis.call('HINCRBY', KEYS[1], 'n', 1) end
redis.call('HSET', KEYS[1], 'v', value, 'e', exp, 'l', ARGV[4])
index(id, row[5], exp)
return {nonce, 'written'}
`)

/** KEYS[1] row. ARGV: id, expiresAt. Sets the expiry of a live row. */
export const touch = script("touch", `
local row = redis.call('HMGET', KEYS[1], 'e', 'r', 'd', 'f')
local refused = refusal(row)
if refused then return {nonce, refused} end
redis.call('HSET', KEYS[1], 'e', ARGV[6], 'l', ARGV[4])
index(ARGV[5], row[4], ARGV[6])
return {nonce, 'touched'}
`)

/** KEYS[1] row. ARGV: subject, audience, metadata. Sets the owner of a live row; returns the previous subject. */
export const setOwner = script("setOwner", `
local row = redis.call('HMGET', KEYS[1], 'e', 'r', 'd', 's')
local refused = refusal(row)
if refused then return {nonce, refused} end
putOwner(KEYS[1], ARGV[5], ARGV[6], ARGV[7])
redis.call('HSET', KEYS[1], 'l', ARGV[4])
return {nonce, 'set', row[4]}
`)

/**
 * KEYS[1] row. ARGV: id, version, value, expiresAt ('' keeps it), whether to set the owner ('1'), subject, audience,
 * metadata. Writes if the row is live and still has the version; returns the new version and the previous subject.
 */
export const compareAndSet = script("compareAndSet", `
local row = redis.call('HMGET', KEYS[1], 'e', 'r', 'd', 'n', 'f', 's')
if refusal(row) or row[4] ~= ARGV[6] then return {nonce} end
redis.call('HSET', KEYS[1], 'v', ARGV[7], 'l', ARGV[4])
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[1], 'e', ARGV[8])
  index(ARGV[5], row[5], ARGV[8])
end
if ARGV[9] == '1' then putOwner(KEYS[1], ARGV[10], ARGV[11], ARGV[12]) end
return {nonce, tostring(redis.call('HINCRBY', KEYS[1], 'n', 1)), row[6]}
`)

/**
 * KEYS[1] old row, KEYS[2] new row (same group). ARGV: old id, version, new id, value, expiresAt, stale expiresAt,
 * whether to set the owner ('1'), subject, audience, metadata. In one step: the new row (same family) and the old
 * one marked rotated, its expiry lowered to the stale one (never raised). Returns '1' and the previous subject.
 */
export const rotate = script("rotate", `${create}
local row = redis.call('HMGET', KEYS[1], 'e', 'r', 'd', 'n', 'f', 's', 'a', 'm')
if refusal(row) or row[4] ~= ARGV[6] then return {nonce, '0'} end
local fam = row[5]
if ARGV[11] == '1' then
  create(KEYS[2], ARGV[7], fam, ARGV[8], ARGV[9], ARGV[12], ARGV[13], ARGV[14])
else
  create(KEYS[2], ARGV[7], fam, ARGV[8], ARGV[9], row[6] or '', row[7] or '', row[8] or '')
end
local stale = row[1]
if tonumber(ARGV[10]) < tonumber(stale) then stale = ARGV[10] end
redis.call('HSET', KEYS[1], 'r', '1', 'e', stale)
redis.call('HINCRBY', KEYS[1], 'n', 1)
index(ARGV[5], fam, stale)
return {nonce, '1', row[6]}
`)

/**
 * KEYS[1] family's members. ARGV: subject ('' for anyone). Ends every key of the family, if one of its current keys
 * belongs to the subject. Returns '1' if it ended anything, and the current key's subject.
 */
export const revoke = script("revoke", `
local ids, open, allowed, owner = redis.call('SMEMBERS', KEYS[1]), {}, ARGV[5] == '', false
for _, id in ipairs(ids) do
  local row = redis.call('HMGET', rowKey(id), 'e', 'r', 'd', 's')
  if row[1] and not row[3] then
    table.insert(open, id)
    if not row[2] then
      owner = row[4]
      if row[4] == ARGV[5] then allowed = true end
    end
  end
end
if #open == 0 or not allowed then return {nonce, '0'} end
for _, id in ipairs(open) do finish(rowKey(id)) end
return {nonce, '1', owner}
`)

/**
 * KEYS[1] row. ARGV: id. Ends the session of the key: every key of its family, or the key alone when it was rotated
 * away. Returns the family and the current key's subject when a family ended.
 */
export const clear = script("clear", `
local row = redis.call('HMGET', KEYS[1], 'e', 'r', 'd', 'f', 's')
if not row[1] or row[3] then return {nonce} end
if row[2] then
  finish(KEYS[1])
  return {nonce}
end
for _, id in ipairs(redis.call('SMEMBERS', membersKey(row[4]))) do
  local key = rowKey(id)
  if redis.call('HEXISTS', key, 'e') == 1 and redis.call('HEXISTS', key, 'd') == 0 then finish(key) end
end
return {nonce, row[4], row[5]}
`)

/**
 * KEYS: the members of families of one group. ARGV: subject, audience ('' for any), then the families. Per family
 * (8 fields): 'I' and its current key's info (family, subject, audience, metadata, createdAt, expiresAt, lastSeenAt)
 * when it is live and the subject's; 'K' when it is the subject's but not listed (expired, another audience); 'S'
 * (stale) when it is not the subject's (the letter repeated).
 */
export const inspect = script("inspect", `
local out = {nonce}
for i = 7, #ARGV do
  local fam = ARGV[i]
  local id, row = current(fam)
  local status = 'I'
  if not id or row[4] ~= ARGV[5] then status = 'S'
  elseif (ARGV[6] ~= '' and row[5] ~= ARGV[6]) or tonumber(row[1]) < now then status = 'K' end
  if status == 'I' then
    local f, s, a, m, c, e, l = info(fam, row)
    table.insert(out, 'I'); table.insert(out, f); table.insert(out, s); table.insert(out, a or false)
    table.insert(out, m or false); table.insert(out, c); table.insert(out, e); table.insert(out, l)
  else
    for _ = 1, 8 do table.insert(out, status) end
  end
end
return out
`)

/**
 * KEYS: the members of families of one group. ARGV: subject, audience ('' for any), the family to spare ('' for
 * none), then the families. Per family one letter: 'L' ended and was live, 'E' ended (expired), 'K' kept (the
 * subject's, but spared or of another audience), 'S' not the subject's (stale).
 */
export const revokeOwned = script("revokeOwned", `
local out = {nonce}
for i = 8, #ARGV do
  local fam = ARGV[i]
  local id, row = current(fam)
  local status
  if not id or row[4] ~= ARGV[5] then status = 'S'
  elseif fam == ARGV[7] or (ARGV[6] ~= '' and row[5] ~= ARGV[6]) then status = 'K'
  else
    status = tonumber(row[1]) < now and 'E' or 'L'
    for _, member in ipairs(redis.call('SMEMBERS', membersKey(fam))) do
      local key = rowKey(member)
      if redis.call('HEXISTS', key, 'e') == 1 and redis.call('HEXISTS', key, 'd') == 0 then finish(key) end
    end
  end
  table.insert(out, status)
end
return out
`)

/**
 * KEYS[1] the group's families. ARGV: after ('' from the start), limit, budget. Live sessions of the group in family
 * order (7 fields each, `inspect`'s info), at most `limit`, scanning at most `budget` families; the second element is
 * the last family scanned when the budget ran out (more may follow), else ''.
 */
export const page = script("page", `
local from = ARGV[5] == '' and '-' or ('(' .. ARGV[5])
local limit, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local fams = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, budget)
local out, found, last = {nonce, ''}, 0, ''
for _, fam in ipairs(fams) do
  last = fam
  local id, row = current(fam)
  if id and tonumber(row[1]) >= now then
    local f, s, a, m, c, e, l = info(fam, row)
    table.insert(out, f); table.insert(out, s or false); table.insert(out, a or false); table.insert(out, m or false)
    table.insert(out, c); table.insert(out, e); table.insert(out, l)
    found = found + 1
    if found == limit then break end
  end
end
if found < limit and #fams == budget then out[2] = last end
return out
`)

/** KEYS[1] the group's expiries. How many rows of the group expired before now. */
export const countExpired = script("countExpired", `
return {nonce, redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[4])}
`)

/**
 * KEYS[1] the group's expiries. ARGV: limit. Deletes at most `limit` rows (tombstones included) that expired before
 * now, with their index entries; returns how many, then (family, subject) of each deleted current key with an owner.
 */
export const deleteExpired = script("deleteExpired", `
local doomed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
local out = {nonce, #doomed}
for _, entry in ipairs(doomed) do
  local id, fam = string.sub(entry, 1, 64), string.sub(entry, 65)
  local key = rowKey(id)
  local row = redis.call('HMGET', key, 'r', 'd', 's')
  if not row[1] and not row[2] and row[3] then
    table.insert(out, fam)
    table.insert(out, row[3])
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], entry)
  redis.call('SREM', membersKey(fam), id)
  if redis.call('SCARD', membersKey(fam)) == 0 then redis.call('ZREM', famZ, fam) end
end
return out
`)

/**
 * KEYS[1] the cleanup lease. ARGV: now, spacing (ms). Claims the background cleanup unless another instance claimed
 * it less than `spacing` before now (or more than `spacing` after: a clock far ahead must not block the others);
 * 1 when claimed. The key's TTL only keeps it from lingering.
 */
export const claimCleanup = script("claimCleanup", `
local now, spacing = tonumber(ARGV[2]), tonumber(ARGV[3])
local last = tonumber(redis.call('GET', KEYS[1]))
if last and last > now - spacing and last <= now + spacing then return {nonce, 0} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', math.floor(2 * spacing) + 1)
return {nonce, 1}
`, true)

/** KEYS[1] a subject's index. ARGV: family, token. Records that the family may belong to the subject. */
export const register = script("register", `
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return {nonce}
`, true)

/** KEYS[1] a subject's index. Its entries: family, token, family, token, ... */
export const entries = script("entries", `
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, nonce)
return out
`, true)

/** KEYS[1] a subject's index. ARGV: family, token pairs. Drops each entry that still has the token read. */
export const prune = script("prune", `
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return {nonce}
`, true)

/** Every script, to load them (`SCRIPT LOAD`) on a node that lost its script cache. */
export const all: ReadonlyArray<Script> = [
  find,
  insert,
  upsert,
  touch,
  setOwner,
  compareAndSet,
  rotate,
  revoke,
  clear,
  inspect,
  revokeOwned,
  page,
  countExpired,
  deleteExpired,
  claimCleanup,
  register,
  entries,
  prune
]
