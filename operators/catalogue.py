"""Every kind ostack serves, in one place."""

from operators.blockstorage.api import KINDS as BLOCKSTORAGE
from operators.common.kinds import Kind
from operators.compute.api import KINDS as COMPUTE
from operators.containerinfra.api import KINDS as CONTAINERINFRA
from operators.identity.api import KINDS as IDENTITY
from operators.image.api import KINDS as IMAGE
from operators.network.api import KINDS as NETWORK
from operators.objectstorage.api import KINDS as OBJECTSTORAGE

KINDS: tuple[Kind, ...] = (
    *IDENTITY,
    *COMPUTE,
    *IMAGE,
    *BLOCKSTORAGE,
    *NETWORK,
    *OBJECTSTORAGE,
    *CONTAINERINFRA,
)
