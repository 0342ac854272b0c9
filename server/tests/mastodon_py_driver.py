"""Drives feedcore-server with Mastodon.py, the real Python client of Mastodon's API.

Usage: python mastodon_py_driver.py BASE_URL
Prints OK and exits 0 when every check held; an assertion names the one that did not.
"""

import sys
import time

import requests
from mastodon import Mastodon, MastodonNotFoundError, MastodonUnauthorizedError

base = sys.argv[1]


def register(name):
    r = requests.post(f"{base}/api/v1/accounts", data={"username": name}, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["access_token"]


def client(token, check="none"):
    return Mastodon(access_token=token, api_base_url=base, version_check_mode=check)


def wait_until(what, f, timeout=20.0):
    """Fan-out runs behind a post: what a follower sees lands a moment later."""
    end = time.time() + timeout
    while True:
        v = f()
        if v:
            return v
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def all_pages(api, first):
    ids, page, pages = [], first, 0
    while page:
        ids += [s.id for s in page]
        pages += 1
        page = api.fetch_next(page)
    return ids, pages


# "created" makes Mastodon.py fetch the instance document and parse its version.
alice = client(register("alice"), check="created")
bob = client(register("bob"))
carol = client(register("carol"))

me = alice.account_verify_credentials()
assert me.username == "alice" and me.acct == "alice", me
bob_me = bob.account_verify_credentials()
assert bob_me.id != me.id

# An unknown token is refused, never answered with another user's data.
try:
    client("A" * 43).account_verify_credentials()
    raise AssertionError("an unknown token was accepted")
except MastodonUnauthorizedError:
    pass

rel = bob.account_follow(me.id)
assert rel.following is True, rel

posted = []
for i in range(100):
    s = alice.status_post(f"post {i} #feedcore")
    assert s.content == f"<p>post {i} #feedcore</p>", s.content
    assert s.account.id == me.id and s.visibility == "public"
    assert [t.name for t in s.tags] == ["feedcore"], s.tags
    posted.append(s.id)
newest_first = list(reversed(posted))
assert alice.account_verify_credentials().statuses_count == 100

top = wait_until("the 100th post in bob's home",
                 lambda: (lambda p: p if p and p[0].id == posted[-1] else None)(bob.timeline_home(limit=40)))
ids, pages = all_pages(bob, top)
assert ids == newest_first, (len(ids), ids[:5])
assert pages == 3, pages  # 40 + 40 + 20, then an empty page ends it

# Default page size 20; fetch_previous (min_id) from the second page gives the first.
first = bob.timeline_home()
assert [s.id for s in first] == newest_first[:20]
second = bob.fetch_next(first)
assert [s.id for s in second] == newest_first[20:40]
back = bob.fetch_previous(second)
assert [s.id for s in back] == newest_first[:20], [s.id for s in back]
# since_id gives the newest above it, min_id the oldest above it.
assert [s.id for s in bob.timeline_home(since_id=posted[10], limit=5)] == newest_first[:5]
assert [s.id for s in bob.timeline_home(min_id=posted[10], limit=5)] == list(reversed(posted[11:16]))

# The public timeline (also without a token), its local form and the hashtag
# timeline page as home does: 100 statuses in 3 pages of 40, Link both ways.
anon = Mastodon(api_base_url=base, version_check_mode="none")
for name, api, first in [
    ("public", alice, lambda: alice.timeline_public(limit=40)),
    ("anonymous public", anon, lambda: anon.timeline_public(limit=40)),
    ("local", bob, lambda: bob.timeline_local(limit=40)),
    ("hashtag", bob, lambda: bob.timeline_hashtag("feedcore", limit=40)),
    ("hashtag in other case", anon, lambda: anon.timeline_hashtag("FeedCore", limit=40)),
]:
    got, n = all_pages(api, first())
    assert got == newest_first and n == 3, (name, len(got), n, got[:3])
assert bob.timeline_hashtag("nobodyusesthis") == []
second = bob.fetch_next(bob.timeline_hashtag("feedcore"))
assert [s.id for s in second] == newest_first[20:40]
assert [s.id for s in bob.fetch_previous(second)] == newest_first[:20]
assert [s.id for s in anon.timeline_public(min_id=posted[10], limit=5)] == list(reversed(posted[11:16]))

# A list: bob's, holding alice, pages as home does; it is nobody else's.
friends = bob.list_create("friends")
assert friends.title == "friends", friends
bob.list_accounts_add(friends, [me.id])
assert [l.id for l in bob.lists()] == [friends.id]
assert bob.list(friends.id).title == "friends"
assert alice.lists() == []
assert [a.id for a in bob.list_accounts(friends)] == [me.id]
got, n = all_pages(bob, bob.timeline_list(friends, limit=40))
assert got == newest_first and n == 3, (len(got), n)
for call in [lambda: alice.timeline_list(friends), lambda: alice.list_accounts_add(friends, [bob_me.id])]:
    try:
        call()
        raise AssertionError("another account's list was served")
    except MastodonNotFoundError:
        pass

# A reply keeps its parent.
reply = bob.status_post("nice", in_reply_to_id=posted[-1])
assert reply.in_reply_to_id == posted[-1], reply
assert alice.status(reply.id).in_reply_to_account_id == me.id

# Delete: gone from the status endpoint and from the follower's home.
gone = alice.status_delete(posted[-1])
assert gone.id == posted[-1]
try:
    bob.status(posted[-1])
    raise AssertionError("a deleted status is still served")
except MastodonNotFoundError:
    pass
home = bob.timeline_home(limit=40)
assert posted[-1] not in [s.id for s in home]
assert [s.id for s in anon.timeline_public(limit=2)] == [reply.id, posted[-2]]
assert bob.timeline_hashtag("feedcore", limit=1)[0].id == posted[-2]
assert bob.timeline_list(friends, limit=1)[0].id == posted[-2]
assert home[0].id == reply.id and home[1].id == posted[-2], [s.id for s in home[:3]]

# Followers-only: the follower sees it, a stranger does not.
carol_me = carol.account_verify_credentials()
bob.account_follow(carol_me.id)
private = carol.status_post("for followers", visibility="private")
assert private.visibility == "private"
wait_until("carol's private post in bob's home", lambda: bob.timeline_home(limit=1)[0].id == private.id)
assert bob.status(private.id).id == private.id
assert private.id not in [s.id for s in bob.timeline_public(limit=5)]  # public statuses only
try:
    alice.status(private.id)
    raise AssertionError("a followers-only status reached a stranger")
except MastodonNotFoundError:
    pass

# Mute hides carol; block ends the follow and hides alice, also her new posts.
rel = bob.account_mute(carol_me.id)
assert rel.muting is True
assert private.id not in [s.id for s in bob.timeline_home(limit=40)]
rel = bob.account_block(me.id)
assert rel.blocking is True and rel.following is False, rel
later = alice.status_post("after the block")
time.sleep(0.3)
home_ids = [s.id for s in bob.timeline_home(limit=40)]
assert home_ids == [reply.id], home_ids
assert later.id not in home_ids
try:
    bob.status(later.id)
    raise AssertionError("a blocked author's status was served")
except MastodonNotFoundError:
    pass
# The block hides alice from bob's public timeline and his list; not from anyone else's.
assert [s.id for s in bob.timeline_public(limit=40)] == [reply.id]
assert bob.timeline_list(friends) == []
assert [s.id for s in anon.timeline_public(limit=2)] == [later.id, reply.id]
bob.list_accounts_delete(friends, [me.id])
assert bob.list_accounts(friends) == []

print("OK", len(ids), "statuses paged in", pages, "pages")
