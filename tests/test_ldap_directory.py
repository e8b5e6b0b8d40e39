"""The directory synced from a real slapd (AD-like schema and sample), its mapping, and its last good copy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from milter.kernel import ldapsync
from milter.kernel.ldapmap import map_entries
from milter.kernel.settings import ConfigError, DirectorySettings, LdapSettings
from tests.support.slapd import ADMIN_DN, Slapd

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    server = Slapd().start()
    yield server
    server.cleanup()


def ad_settings(server: Slapd, **changes: object) -> LdapSettings:
    values: dict[str, object] = {
        "url": server.url,
        "base_dn": "dc=example,dc=gov",
        "bind_dn": ADMIN_DN,
        "password_file": server.password_file,
        "cache": server.folder / "cache.json",
        "timeout": 3,
        "broadcast_groups": ("All Staff",),
        "role_groups": {
            "department-head": ("Department Heads",),
            "it-staff": ("it-staff@example.gov",),
            "records-officer": ("cn=Records Officers,ou=Groups,dc=example,dc=gov",),
        },
    }
    values.update(changes)
    return LdapSettings.model_validate(values)


def test_openldap_preset_maps_inetorgperson_and_groupofnames() -> None:
    settings = LdapSettings(
        url="ldap://x",
        base_dn="dc=x",
        preset="openldap",
        broadcast_groups=("everyone",),
        role_groups={"department-head": ("heads",)},
    )
    people = [
        ("uid=a,ou=p,dc=x", {"mail": ["A@Example.gov"], "cn": ["Ann A"], "departmentnumber": ["Parks"]}),
        (
            "uid=b,ou=p,dc=x",
            {
                "mail": ["b@example.gov"],
                "displayname": ["Bo B"],
                "departmentnumber": ["Parks"],
                "manager": ["uid=a,ou=p,dc=x"],
            },
        ),
        ("uid=c,ou=p,dc=x", {"cn": ["No Mail"]}),
    ]
    groups = [
        (
            "cn=everyone,ou=g,dc=x",
            {"cn": ["everyone"], "mail": ["everyone@example.gov"], "member": ["cn=parks,ou=g,dc=x"]},
        ),
        ("cn=parks,ou=g,dc=x", {"cn": ["parks"], "uniquemember": ["uid=a,ou=p,dc=x", "uid=b,ou=p,dc=x"]}),
    ]
    snapshot = map_entries(people, groups, settings)
    by_address = {p.address: p for p in snapshot.people}
    assert set(by_address) == {"a@example.gov", "b@example.gov"}
    assert by_address["a@example.gov"].name == "Ann A"  # no displayName: cn
    assert by_address["b@example.gov"].manager == "a@example.gov"
    assert [(s.dn, s.reason) for s in snapshot.skipped] == [("uid=c,ou=p,dc=x", "no mail attribute")]
    [group] = snapshot.groups
    assert (group.address, group.broadcast, group.size) == ("everyone@example.gov", True, 2)
    # no head group member in Parks: the top of the manager chain heads it, and the note says so
    [parks] = snapshot.departments
    assert (parks.id, parks.head) == ("parks", "a@example.gov")
    assert any("manager chain" in note for note in snapshot.notes)
    assert any("'heads' was not found" in note for note in snapshot.notes)


def test_sync_from_slapd_reads_ad_people_groups_and_departments(slapd: Slapd) -> None:
    settings = ad_settings(slapd)
    snapshot = ldapsync.sync(settings)
    people = {p.address: p for p in snapshot.people}
    # SMTP: is primary (lower-cased), smtp: entries are aliases, X500: is ignored
    assert people["sam.ortiz@example.gov"].aliases == {"sortiz@example.gov"}
    assert people["dwhitfield@example.gov"].aliases == {"dana.whitfield@example.gov"}
    assert people["lpark@example.gov"].manager == "dwhitfield@example.gov"
    assert people["mvasquenza@example.gov"].roles == {"department-head", "it-staff"}  # it-staff through nested groups
    assert people["jdoe@example.gov"].roles == {"department-head", "records-officer"}
    reasons = {s.dn.split(",")[0]: s.reason for s in snapshot.skipped}
    assert reasons["cn=Former Employee"] == "disabled account (userAccountControl)"
    assert reasons["cn=Scanner Service"] == "no mail attribute"
    assert "clerk@example.gov" in reasons["cn=Pat Copy"]  # a duplicate alias goes to the first owner only
    assert people["jdoe@example.gov"].aliases == {"clerk@example.gov"}
    groups = {g.address: g for g in snapshot.groups}
    assert groups["all-staff@example.gov"].broadcast and groups["all-staff@example.gov"].size == 7
    assert groups["it-staff@example.gov"].size == 2  # IT Staff <-> IT Leadership is a cycle
    assert "fformer@example.gov" not in groups["pw-staff@example.gov"].members
    heads = {d.id: d.head for d in snapshot.departments}
    assert heads == {
        "public-works": "dwhitfield@example.gov",
        "information-technology": "mvasquenza@example.gov",
        "town-clerk": "jdoe@example.gov",
    }
    status = ldapsync.read_status(settings)
    assert status is not None and status.ok and status.people == 7


def test_the_toml_file_layers_on_the_ldap_copy(slapd: Slapd, tmp_path: Path) -> None:
    toml = tmp_path / "directory.toml"
    toml.write_text(
        'domains = ["example.gov"]\n'
        '[[people]]\naddress = "approver@example.gov"\nname = "Fallback Approver"\n'
        '[[departments]]\nid = "public-works"\nname = "Public Works"\ndelegates = ["approver@example.gov"]\n'
    )
    directory = ldapsync.load(DirectorySettings(path=toml, ldap=ad_settings(slapd)))
    assert directory.person("SORTIZ@example.gov").name == "Sam Ortiz"  # type: ignore[union-attr]
    assert directory.person("approver@example.gov") is not None
    works = directory.departments["public-works"]
    assert (works.head, works.delegates) == ("dwhitfield@example.gov", ("approver@example.gov",))
    assert directory.group("all-staff@example.gov").broadcast  # type: ignore[union-attr]


def test_a_shrunken_result_is_refused_and_the_last_good_copy_kept(slapd: Slapd) -> None:
    settings = ad_settings(slapd)
    ldapsync.sync(settings)
    before = settings.cache.read_bytes()
    narrow = settings.model_copy(update={"people_filter": "(&(objectCategory=person)(department=Town Clerk))"})
    with pytest.raises(ldapsync.SyncFailed, match=r"fewer than 0\.9 of the last sync's 7"):
        ldapsync.sync(narrow)
    assert settings.cache.read_bytes() == before
    status = ldapsync.read_status(settings)
    assert status is not None and not status.ok and status.people == 7 and "refused" in status.message
    # an admin who means it lowers the ratio
    ldapsync.sync(narrow.model_copy(update={"min_ratio": 0.1}))
    assert len(json.loads(settings.cache.read_text())["people"]) == 2


def test_ldap_down_at_start_uses_the_cached_copy_or_says_clearly_there_is_none(slapd: Slapd) -> None:
    toml = ROOT / "config" / "directory.toml"
    settings = ad_settings(slapd)
    slapd.stop()
    with pytest.raises(ConfigError, match="LDAP could not be read and there is no cached copy"):
        ldapsync.load(DirectorySettings(path=toml, ldap=settings))
    slapd.start()
    ldapsync.sync(settings)
    slapd.kill()
    directory = ldapsync.load(DirectorySettings(path=toml, ldap=settings))
    assert directory.person("sam.ortiz@example.gov") is not None
    with pytest.raises(ldapsync.SyncFailed):
        ldapsync.sync(settings)
    status = ldapsync.read_status(settings)
    assert status is not None and not status.ok and status.synced_at is not None


def test_wrong_password_is_a_failed_sync(slapd: Slapd) -> None:
    wrong = slapd.folder / "wrong"
    wrong.write_text("nope\n")
    with pytest.raises(ldapsync.SyncFailed, match="LDAPInvalidCredentialsResult"):
        ldapsync.sync(ad_settings(slapd, password_file=wrong))
