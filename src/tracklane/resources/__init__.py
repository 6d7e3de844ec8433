"""The public shapes of every resource, defined once.

Each module owns one group of resources: the request bodies (decoded straight from bytes by
`tracklane.resources.decoding`, handed to the service as its command and to the write port as its
argument) and one view per role (admin, advertiser, partner) that is the only way the resource leaves
the process: API responses, webhook payloads, partner postbacks, exports and pages. A role's view is a
type without the fields that role may not see, so nothing can leak by forgetting to delete a key.
The OpenAPI document is generated from these same types.

This layer sits on `domain` and below `services`; it imports the standard library, `msgspec` and the domain.
"""
