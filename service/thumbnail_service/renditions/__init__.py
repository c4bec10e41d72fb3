"""Signed on-the-fly renditions of stored originals (docs/api.md, "Renditions").

    signing      imgproxy-compatible URL signatures: HMAC-SHA256(key, salt + path), several
                 key/salt pairs valid at once (rotation)
    options      the options segment (`w:300,h:200,fit:cover,f:auto,q:80` or `preset:NAME`)
                 parsed and bounded like job options; its canonical form keys the cache
    negotiation  `f:auto` and the request's Accept header: AVIF, WebP or the source's format
    locks        the Redis lock that elects one renderer per rendition across replicas
    memory       recently served renditions kept in the API process (bytes- and time-bounded)
    service      the use case: memory, stored rendition, else render once (single-flight in
                 the process, a Redis lock across replicas), answer, then store
"""
