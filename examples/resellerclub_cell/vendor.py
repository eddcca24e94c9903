"""An in-memory stand-in for the ResellerClub API: domains, their name servers and contacts.

It behaves like a registrar where it matters to a cell: registering a taken domain is a conflict,
unknown domains are not found, wrong credentials are refused, and repeating a call with the same
idempotency key (the gateway's request id) does not repeat its effect.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_NAMESERVERS = {"ns1": "ns1.resellerclub.example", "ns2": "ns2.resellerclub.example"}
TAKEN = frozenset({"google.com", "example.com"})


class VendorError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Domain:
    name: str
    order_id: str
    expires_at: datetime
    nameservers: dict[str, str]
    privacy_protection: bool = False
    status: str = "active"
    contacts: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "domain": self.name,
            "order_id": self.order_id,
            "status": self.status,
            "expires_at": self.expires_at.isoformat().replace("+00:00", "Z"),
            "nameservers": dict(self.nameservers),
        }


class InMemoryResellerClub:
    def __init__(self, *, userid: str = "reseller", password: str = "secret") -> None:  # noqa: S107
        self._credentials = (userid, password)
        self._domains: dict[str, Domain] = {}
        self._done: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def _check(self, userid: str, password: str) -> None:
        if (userid, password) != self._credentials:
            raise VendorError("auth", "the reseller id or password is wrong")

    def _once(self, key: str | None, work: Any) -> Any:
        """Run ``work`` once per idempotency key; a repeat returns the first answer."""
        with self._lock:
            self.calls += 1
            if key and key in self._done:
                return copy.deepcopy(self._done[key])
            answer = work()
            if key:
                self._done[key] = copy.deepcopy(answer)
            return answer

    def _domain(self, name: str) -> Domain:
        found = self._domains.get(name)
        if found is None:
            raise VendorError("not_found", f"{name} is not registered with this reseller")
        return found

    def available(self, userid: str, password: str, name: str) -> dict[str, Any]:
        self._check(userid, password)
        free = name not in TAKEN and name not in self._domains
        return {"available": free, "premium": len(name.split(".")[0]) <= 3, "price": 9.99}

    def register(
        self,
        userid: str,
        password: str,
        name: str,
        years: int,
        nameservers: dict[str, str] | None,
        privacy: bool,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        self._check(userid, password)

        def work() -> dict[str, Any]:
            if name in TAKEN or name in self._domains:
                raise VendorError("taken", f"{name} is already registered")
            domain = Domain(
                name=name,
                order_id=hashlib.sha1(name.encode()).hexdigest()[:10],  # noqa: S324 - an id, not security
                expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=365 * years),
                nameservers=dict(nameservers or DEFAULT_NAMESERVERS),
                privacy_protection=privacy,
            )
            domain.contacts = [
                {"contact_id": f"{domain.order_id}-{kind}", "type": kind, "name": "Registrant"}
                for kind in ("registrant", "admin", "tech", "billing")
            ]
            self._domains[name] = domain
            return domain.view()

        return dict(self._once(idempotency_key, work))

    def get(self, userid: str, password: str, name: str) -> Domain:
        self._check(userid, password)
        return self._domain(name)

    def modify(self, userid: str, password: str, name: str, **changes: Any) -> dict[str, Any]:
        self._check(userid, password)
        with self._lock:
            domain = self._domain(name)
            for key, value in changes.items():
                setattr(domain, key, value)
            return domain.view()

    def renew(
        self, userid: str, password: str, name: str, years: int, idempotency_key: str | None
    ) -> dict[str, Any]:
        self._check(userid, password)

        def work() -> dict[str, Any]:
            domain = self._domain(name)
            domain.expires_at += timedelta(days=365 * years)
            return domain.view()

        return dict(self._once(idempotency_key, work))

    def transfer_in(
        self, userid: str, password: str, name: str, auth_code: str, idempotency_key: str | None
    ) -> dict[str, Any]:
        self._check(userid, password)

        def work() -> dict[str, Any]:
            if name in self._domains:
                raise VendorError("taken", f"{name} is already with this reseller")
            domain = Domain(
                name=name,
                order_id=hashlib.sha1(auth_code.encode()).hexdigest()[:10],  # noqa: S324
                expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=365),
                nameservers=dict(DEFAULT_NAMESERVERS),
                status="transferred",
            )
            self._domains[name] = domain
            return domain.view()

        return dict(self._once(idempotency_key, work))

    def epp_code(self, userid: str, password: str, name: str) -> str:
        return "EPP-" + self.get(userid, password, name).order_id.upper()
