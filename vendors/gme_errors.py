"""Every error code of GME 2018-07-11, with what the caller does about it.

One row per code of the official SDK's ``tencentcloud/gme/v20180711/errorcodes.py``
(60 codes, in its order), classified by the SDK's description (given here in English
after the reason; where the SDK repeats the code as its description, by the name).
None of GME's descriptions says "try again later": only vendor-side failures (internal,
storage, database, capacity) are retried, rejection for capacity is THROTTLED, and
parameter, audio, account and task errors are PERMANENT. Many codes belong to actions
voxqueue never calls (voiceprints, rooms, recording, applications); they are listed so
that no code of the SDK falls through to a prefix default. ``tests/vendors/test_error_codes.py``
fails when the installed SDK lists a code this table does not.
"""

from __future__ import annotations

from vendors.errors import Disposition
from vendors.tencent import ErrorTable, error_table

RETRY, THROTTLED, PERMANENT = Disposition.RETRY, Disposition.THROTTLED, Disposition.PERMANENT

GME_ERRORS: ErrorTable = error_table({
    "AuthFailure": (PERMANENT, "auth", "CAM signature or authentication error"),
    "DryRunOperation": (PERMANENT, "dry_run", "DryRun: the request would succeed, but was not carried out"),
    "FailedOperation": (PERMANENT, "failed_operation", "operation failed (no further detail)"),
    "FailedOperation.CosOperationFailed": (RETRY, "vendor_storage", "the vendor's object storage failed"),
    "FailedOperation.DbOperationFailed": (RETRY, "vendor_storage", "the vendor's database failed"),
    "FailedOperation.GenVoicePrintIdFailed": (RETRY, "vendor_storage", "generating a voiceprint id failed"),
    "FailedOperation.LoginFailed": (PERMANENT, "auth", "the login has expired"),
    "FailedOperation.NotAbility": (PERMANENT, "unsupported_operation", "the feature is not enabled"),
    "FailedOperation.NotAllowed": (PERMANENT, "operation_denied", "not allowed"),
    "FailedOperation.TaskExist": (PERMANENT, "task_exists", "the task already exists"),
    "FailedOperation.TaskNotExist": (PERMANENT, "task_not_found", "the task does not exist"),
    "FailedOperation.UpdateVoicePrintIdNotFound": (PERMANENT, "resource_not_found", "the voiceprint to update does not exist"),
    "FailedOperation.UserFeeNegative": (PERMANENT, "account_in_arrears", "the account is in arrears"),
    "FailedOperation.VoicePrintAudioCheckFailed": (PERMANENT, "invalid_audio", "the voiceprint audio failed its check"),
    "FailedOperation.VoicePrintRegistrationLimit": (PERMANENT, "quota_exceeded", "voiceprint registrations over the limit"),
    "InternalError": (RETRY, "internal_error", "internal error"),
    "InvalidParameter": (PERMANENT, "invalid_parameter", "parameter error"),
    "InvalidParameter.CallbackAddress": (PERMANENT, "invalid_callback_address", "the callback address is wrong"),
    "InvalidParameter.DateInvalid": (PERMANENT, "invalid_parameter", "invalid date"),
    "InvalidParameter.DateOutOfSixtyDays": (PERMANENT, "invalid_parameter", "the date is outside the 60-day query range"),
    "InvalidParameter.InvalidAudioInput": (PERMANENT, "invalid_audio", "the audio input is invalid"),
    "InvalidParameter.InvalidSdkAppId": (PERMANENT, "invalid_biz_id", "the SdkAppId (BizId) is invalid"),
    "InvalidParameter.InvalidVoicePrintIdList": (PERMANENT, "invalid_parameter", "the voiceprint id list is invalid"),
    "InvalidParameter.TagKey": (PERMANENT, "invalid_parameter", "wrong tag"),
    "InvalidParameter.TaskId": (PERMANENT, "invalid_parameter", "wrong TaskId"),
    "InvalidParameter.TimeRangeError": (PERMANENT, "invalid_parameter", "wrong query time range"),
    "InvalidParameter.UserSig": (PERMANENT, "auth", "wrong UserSig"),
    "InvalidParameterValue.InvalidBizId": (PERMANENT, "invalid_biz_id", "wrong BizId"),
    "InvalidParameterValue.InvalidDeleteType": (PERMANENT, "invalid_parameter", "the delete type must be 1 or 2"),
    "InvalidParameterValue.InvalidRecordMode": (PERMANENT, "invalid_parameter", "wrong RecordMode"),
    "InvalidParameterValue.InvalidRoomId": (PERMANENT, "invalid_parameter", "wrong RoomId"),
    "InvalidParameterValue.InvalidStrUin": (PERMANENT, "invalid_parameter", "StrUid is not needed; give Uid"),
    "InvalidParameterValue.InvalidSubscribeRecordUserIds": (PERMANENT, "invalid_parameter", "wrong allow/block list format"),
    "InvalidParameterValue.InvalidSubscribeUserIds": (PERMANENT, "invalid_parameter", "more than 20 on the allowlist"),
    "InvalidParameterValue.InvalidTaskId": (PERMANENT, "invalid_parameter", "wrong taskid"),
    "InvalidParameterValue.InvalidUNSubscribeUserIds": (PERMANENT, "invalid_parameter", "more than 20 on the blocklist"),
    "InvalidParameterValue.InvalidUinOrStrUin": (PERMANENT, "invalid_parameter", "uid and strUid cannot both be given"),
    "LimitExceeded": (PERMANENT, "quota_exceeded", "over the quota"),
    "LimitExceeded.Application": (PERMANENT, "quota_exceeded", "the number of applications is at its limit"),
    "MissingParameter": (PERMANENT, "invalid_parameter", "a parameter is missing"),
    "MissingParameter.MissingVoicePrintUpdateParams": (PERMANENT, "invalid_parameter", "voiceprint update parameters missing"),
    "OperationDenied": (PERMANENT, "operation_denied", "operation denied"),
    "OperationDenied.AccountInArrears": (PERMANENT, "account_in_arrears", "the account is in arrears"),
    "ResourceInUse.TaskInUse": (PERMANENT, "task_exists", "the task already exists"),
    "ResourceInsufficient": (RETRY, "vendor_busy", "resources insufficient"),
    "ResourceInsufficient.RequestRejection": (THROTTLED, "throttled", "request rejected: resources insufficient"),
    "ResourceNotFound": (PERMANENT, "resource_not_found", "the resource does not exist"),
    "ResourceNotFound.BizidIsNotFound": (PERMANENT, "invalid_biz_id", "wrong application id (BizId)"),
    "ResourceNotFound.RoomNotFound": (PERMANENT, "resource_not_found", "the room does not exist"),
    "ResourceNotFound.TaskNotFound": (PERMANENT, "task_not_found", "the task id does not exist"),
    "ResourceUnavailable": (PERMANENT, "resource_unavailable", "resource unavailable"),
    "ResourcesSoldOut": (PERMANENT, "resource_unavailable", "resources sold out"),
    "UnauthorizedOperation": (PERMANENT, "unauthorized", "not authorised"),
    "UnauthorizedOperation.CreateAppDenied": (PERMANENT, "unauthorized", "creating an application is not authorised"),
    "UnauthorizedOperation.UnRealNameAuth": (PERMANENT, "unauthorized", "the account has no real-name verification"),
    "UnknownParameter": (PERMANENT, "invalid_parameter", "unknown parameter"),
    "UnsupportedOperation": (PERMANENT, "unsupported_operation", "operation not supported"),
    "UnsupportedOperation.LimitDeleteExceeded": (PERMANENT, "unsupported_operation", "over the most users that can be removed"),
    "UnsupportedOperation.PTTSwitchOff": (PERMANENT, "unsupported_operation", "speech-to-text is switched off"),
    "UnsupportedOperation.ServiceNotOpened": (PERMANENT, "unsupported_operation", "the recording service is not enabled"),
})
