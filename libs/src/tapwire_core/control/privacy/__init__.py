"""Data-subject requests in the control plane: request records, their audit trail, the suppression list, keys.

Personal data never enters the long-lived tables: a request keeps a salted hash of its subject's identifiers;
the identifiers themselves live in ``privacy_request_subjects`` only while the request is open. The suppression
list and marketing opt-outs hold salted hashes too (see ``subject_keys``), so the gateway, the loader and the
messaging service can test an incoming identifier without the list revealing who is on it.
"""
