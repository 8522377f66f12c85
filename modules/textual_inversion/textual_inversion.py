"""A1111's ``modules.textual_inversion.textual_inversion``: ``Embedding`` and ``EmbeddingDatabase``. A thin facade;
the code lives in ``modules.networks`` (the running Engine's database is ``sd_hijack.model_hijack.embedding_db``)."""
from modules.networks.embedding_files import Embedding  # noqa: F401
from modules.networks.embeddings import EmbeddingDatabase  # noqa: F401
