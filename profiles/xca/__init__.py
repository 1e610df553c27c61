"""XCA, sans I/O: the initiating gateway's planning and merging, and the ITI-38/39 codecs.

    query        ITI-38 request encoding (stored query -> AdhocQueryRequest) and a
                 tolerant reader of partners' AdhocQueryResponses
    retrieve     RetrieveDocumentSet request/response models and codec (ITI-39/43)
    ports        InitiatingGateway: what the transactions need from the gateway
    merge        many communities' answers -> one response (Success/PartialSuccess/Failure)
    ig_query     ITI-18 in -> ITI-38 out (descriptor IG_ITI_18)
    ig_retrieve  ITI-43 in -> ITI-39 out (descriptor IG_ITI_43)
"""
