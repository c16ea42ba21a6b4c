"""Flash-call phone verification: the code rides in the caller ID of a missed call.

``FlashcallService`` handles ``flashcall.create`` and ``flashcall.verify``
(CONTRACT.md section 3) and follows the calls that carry the codes; ``codes``,
``orders`` and ``limits`` hold the pure rules.
"""

from callworker.flashcall.service import FlashcallService
from callworker.flashcall.verify import OrderElsewhere

__all__ = ["FlashcallService", "OrderElsewhere"]
