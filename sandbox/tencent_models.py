"""The request models of the Tencent API 3.0 actions the sandbox serves.

The real API checks a body against its action's model before the product sees it: a
field the model lacks is ``UnknownParameter``, a value of the wrong JSON type
``InvalidParameter``. Each model here is ``{field: type}`` in the official SDK's own
notation (``int``, ``float``, ``str``, ``bool``, ``list of T``, or another model's
name), as in the ``:type`` lines of ``tencentcloud.<product>.<version>.models``;
``tests/sandbox/test_request_models.py`` checks they equal the installed SDK's.
:func:`sandbox.tencent.check_model` applies them.
"""

from __future__ import annotations

Model = dict[str, str]

_VOICE_CHUNK: Model = {
    "SeqId": "int", "IsEnd": "int", "VoiceFileType": "int", "VoiceEncodeType": "int",
    "UserVoiceData": "str", "SessionId": "str",
}  # fmt: skip
_EVALUATION: Model = {
    "RefText": "str", "WorkMode": "int", "EvalMode": "int", "ScoreCoeff": "float",
    "SoeAppId": "str",
}  # fmt: skip

SOE: dict[str, Model] = {
    "TransmitOralProcessWithInitRequest": {
        **_VOICE_CHUNK, **_EVALUATION, "StorageMode": "int", "SentenceInfoEnabled": "int",
        "ServerType": "int", "IsAsync": "int", "IsQuery": "int", "TextMode": "int",
        "Keyword": "str", "COSBucketURL": "str",
    },
    "InitOralProcessRequest": {
        "SessionId": "str", **_EVALUATION, "IsLongLifeSession": "int", "StorageMode": "int",
        "SentenceInfoEnabled": "int", "ServerType": "int", "IsAsync": "int", "TextMode": "int",
        "Keyword": "str",
    },
    "TransmitOralProcessRequest": {
        **_VOICE_CHUNK, "SoeAppId": "str", "IsLongLifeSession": "int", "IsQuery": "int",
    },
    "KeywordEvaluateRequest": {
        **_VOICE_CHUNK, "Keywords": "list of Keyword", "SoeAppId": "str", "IsQuery": "int",
    },
    "Keyword": {
        "RefText": "str", "EvalMode": "int", "ScoreCoeff": "float", "ServerType": "int",
        "TextMode": "int",
    },
}  # fmt: skip

GME: dict[str, Model] = {
    "ScanVoiceRequest": {
        "BizId": "int", "Scenes": "list of str", "Live": "bool", "Tasks": "list of Task",
        "Callback": "str", "Lang": "str",
    },
    "Task": {"DataId": "str", "Url": "str", "RoomId": "str", "OpenId": "str"},
    "DescribeScanResultListRequest": {"BizId": "int", "TaskIdList": "list of str", "Limit": "int"},
}  # fmt: skip

MODELS: dict[str, dict[str, Model]] = {"soe": SOE, "gme": GME}  # by credential-scope service
