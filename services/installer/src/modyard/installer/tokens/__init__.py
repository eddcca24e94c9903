"""Token revocation and the denials every service follows: the service (revocations) and its
endpoints."""
