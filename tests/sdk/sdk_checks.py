"""What the SDK scripts share: a client of the seed cloud's SDK signed with
an access key, and one printed line per check."""
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException


def client(kind, endpoint, key, secret, project_id):
    return (kind.new_builder()
            .with_credentials(BasicCredentials(key, secret, project_id))
            .with_endpoints([endpoint])
            .build())


def check(what, ok):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        sys.exit(1)


def refused(what, call, status, code):
    try:
        call()
    except ClientRequestException as e:
        check(f"{what}: {e.status_code} {e.error_code} {e.error_msg}",
              e.status_code == status and e.error_code == code)
        return
    check(f"{what}: not refused", False)


def filled(what, objects, fields, nothing=(None, "", [])):
    """Every object has every field, `nothing` counting as not having it."""
    empty = sorted({f for o in objects for f in fields if getattr(o, f) in nothing})
    check(f"{what}: {len(objects)}, {', '.join(fields)} filled; empty: {empty}", objects and not empty)
