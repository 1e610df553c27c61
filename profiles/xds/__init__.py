"""XDS.b metadata, sans I/O: the model, its ebRIM 3.0 codec and the ITI TF-3 rules.

    codes        UUIDs, slot names and the closed vocabularies (Enums)
    values       CX patient ids, OIDs, UUID URNs, DTM timestamps
    metadata     DocumentEntry, SubmissionSet, Folder, Association, Submission
    rim/objects  one ebRIM registry object <-> one model
    ebrim        whole messages: SubmitObjectsRequest, ProvideAndRegister,
                 RegistryObjectList, AdhocQueryResponse, RegistryResponse
    rules/associations/validate
                 validate_submission(sub, actor=...) -> every problem, coded

The transactions (ITI-18/41/42/43) build on these modules; nothing here
imports the gateway or opens a file.
"""
