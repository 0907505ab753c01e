"""What the customer reads: every prompt, guidance and outcome in Chinese and English (one table)."""

# ruff: noqa: RUF001 - Chinese text uses full-width punctuation on purpose

from dataclasses import dataclass

from atm_host.vision import quality


@dataclass(frozen=True)
class Text:
    """One message in both languages."""

    zh: str
    en: str

    def as_dict(self) -> dict[str, str]:
        return {"zh": self.zh, "en": self.en}


# Prompt of each state (keys are State values; the machine checks the table is complete).
PROMPTS: dict[str, Text] = {
    "out_of_service": Text("暂停服务，请使用其他自助设备", "Out of service - please use another ATM"),
    "idle": Text(
        "请将手机上的取款二维码对准摄像头", "Show the withdrawal QR code on your phone to the camera"
    ),
    "check_token": Text("正在核对二维码…", "Checking your QR code..."),
    "face": Text("请正对摄像头，距离约50厘米", "Look at the camera from about 50 cm"),
    "challenge": Text("请眨眨眼", "Please blink"),
    "second_check": Text("请输入账号后{n}位", "Enter the last {n} digits of your account number"),
    "second_check_mobile": Text("请输入手机号后{n}位", "Enter the last {n} digits of your mobile number"),
    "amount": Text("请选择或输入取款金额", "Choose or type the amount"),
    "nonce": Text("正在处理，请稍候…", "Processing, please wait..."),
    "authorize": Text("正在向银行确认…", "Asking your bank..."),
    "dispense": Text("正在点钞，请稍候…", "Counting your cash..."),
    "present": Text("请取走现金", "Please take your cash"),
    "report": Text("正在完成交易…", "Finishing the transaction..."),
    "end": Text("谢谢", "Thank you"),
}

GUIDANCE: dict[str, Text] = {
    quality.COME_CLOSER: Text("请靠近一点", "Come a little closer"),
    quality.STEP_BACK: Text("请稍微后退", "Step back a little"),
    quality.LOOK_AT_CAMERA: Text("请正视摄像头", "Look straight at the camera"),
    quality.HEAD_STRAIGHT: Text("请保持头部端正", "Keep your head straight"),
    quality.HOLD_STILL: Text("请保持不动", "Hold still"),
    quality.TOO_DARK: Text("光线太暗，请移到明亮处", "Too dark: move into the light"),
    quality.TOO_BRIGHT: Text("光线太强，请避开强光", "Too bright: step out of the glare"),
    quality.CENTRE: Text("请移到屏幕中央", "Move to the centre of the screen"),
    "no_face": Text("请看向摄像头", "Please look at the camera"),
    "many_faces": Text("请一人操作，其他人请后退", "One person at a time, please"),
    "turn_left": Text("请向左转头", "Please turn your head to the left"),
    "turn_right": Text("请向右转头", "Please turn your head to the right"),
    "blink": Text("请眨眨眼", "Please blink"),
    "no_qr": Text("请将二维码放在画面中央，距离约20-30厘米", "Hold the QR code 20-30 cm from the camera"),
}

# How each journey ends. Decline reasons from the bank map onto these; nothing says which factor failed.
OUTCOMES: dict[str, Text] = {
    "paid": Text("请取走现金，交易完成", "Cash taken - thank you"),
    "retracted": Text("现金未取走，已收回，款项将退回您的账户", "Cash not taken: retracted and refunded"),
    "partial": Text("部分现金未取走，已收回", "Some cash was not taken and was retracted"),
    "cancelled": Text("交易已取消", "Transaction cancelled"),
    "timeout": Text("操作超时，交易已取消", "Time out - transaction cancelled"),
    "token_invalid": Text("二维码无效，请在手机上重新生成", "This QR code is not valid: make a new one"),
    "token_expired": Text("二维码已过期，请重新生成", "This QR code has expired: make a new one"),
    "identity_failed": Text("身份核验未通过", "Identity check failed"),
    "attack": Text("身份核验未通过", "Identity check failed"),
    "amount_invalid": Text("本机无法支付该金额，请重新选择", "This ATM cannot pay that amount"),
    "limit": Text("超出取款限额", "Above your withdrawal limit"),
    "declined": Text("银行未批准本次取款", "Your bank declined this withdrawal"),
    "try_later": Text("尝试次数过多，请稍后再试", "Too many attempts - please try again later"),
    "bank_unreachable": Text("暂时无法连接银行，未出钞，请稍后再试", "Bank not reachable - no cash paid"),
    "dispenser_fault": Text("设备故障，未出钞，款项不会扣除", "Device fault - no cash paid, not charged"),
    "suspect": Text("设备故障，银行将核对本次交易", "Device fault - your bank will check this transaction"),
    "out_of_service": Text("暂停服务", "Out of service"),
}

# Bank decline reason -> outcome code shown to the customer.
DECLINE_OUTCOME: dict[str, str] = {
    "TOKEN_FORGED": "token_invalid",
    "TOKEN_REPLAYED": "token_invalid",
    "TOKEN_EXPIRED": "token_expired",
    "LIVENESS_FAILED": "identity_failed",
    "FACE_MISMATCH": "identity_failed",
    "FACE_QUALITY_LOW": "identity_failed",
    "SECOND_CHECK_FAILED": "identity_failed",
    "AMOUNT_INVALID": "amount_invalid",
    "AMOUNT_MISMATCH": "amount_invalid",
    "CANNOT_DISPENSE": "amount_invalid",
    "LIMIT_PER_WITHDRAWAL": "limit",
    "LIMIT_DAILY": "limit",
    "LIMIT_ACCOUNT_TOTAL": "limit",
    "TOO_FREQUENT": "try_later",
    "ATTEMPTS_EXCEEDED": "try_later",
    "LOCKED_OUT": "try_later",
    "STALE_REQUEST": "try_later",
    "UNKNOWN_ATM": "out_of_service",
    "WRONG_ATM": "out_of_service",
}

CAUSES: dict[str, Text] = {
    "bank_unreachable": Text("无法连接银行", "bank not reachable"),
    "cassettes_empty": Text("现金不足", "out of cash"),
    "dispenser_fault": Text("出钞设备故障", "dispenser fault"),
    "dispenser_offline": Text("出钞设备无响应", "dispenser not answering"),
    "dispenser_link_lost": Text("出钞设备连接中断", "dispenser link lost"),
    "tamper": Text("安全警报", "security alarm"),
    "door_open": Text("保险柜门已打开", "safe door open"),
    "operator": Text("维护中", "maintenance"),
    "not_configured": Text("等待银行配置", "waiting for the bank's configuration"),
}


def prompt(state: str, digits: int = 4) -> Text:
    """The prompt of a state, with the digit count filled in."""
    t = PROMPTS[state]
    return Text(t.zh.format(n=digits), t.en.format(n=digits))


def guidance(reasons: list[str]) -> Text:
    """Bilingual guidance for the quality gate's reasons (first two, unknown ones passed through)."""
    texts = [GUIDANCE.get(r, Text(r, r)) for r in reasons[:2]]
    return Text("，".join(t.zh for t in texts), "; ".join(t.en for t in texts))


def outcome(code: str) -> Text:
    """The text of an outcome code."""
    return OUTCOMES.get(code, OUTCOMES["declined"])
