"""What services hand to the privacy worker, and what it hands back: the contract between them.

The privacy worker answers data-subject requests across every store; other services take part without importing
it. A request reaches them as a :class:`~tapwire_core.privacy.scope.Scope` (an account and the subject's keys),
and a service that sends personal data out of the suite contributes a
:class:`~tapwire_core.privacy.data_recipients.DataRecipient` per destination.

Where privacy state is *stored* (request records, the suppression list, salted subject keys) is a different
matter: see ``tapwire_core.control.privacy``.
"""
