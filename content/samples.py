"""Plausible values, on the long side, for every placeholder the catalogues use: what the SMS length tests and
`checkin sms templates check` measure texts and template variables with."""

SAMPLE = {
    "name": "欧阳明华", "officer": "李娜娜", "case_number": "JZ2013041", "township": "红果镇",
    "deadline": "3月7日 09:00", "next": "明天 09:00", "time": "13:25", "id": "1234", "text": "我下周要去医院复查。",
    "level": "严管", "what": "报到", "count": "12", "receipt": "R-2027-0412", "parts": "3", "phone": "138 1234 5678",
    "telegram": "Telegram 已绑定", "history": "09:00 已提醒，11:00 再次提醒，均未回复。", "last_contact": "3月1日 09:12（报到）",
    "prompted": "09:00", "reminded": "11:00", "opened": "3月1日 13:00", "action": "已联系上", "case": "JZ2013041",
    "status": "在矫", "last": "3月1日 09:12", "done": "20", "missed": "2", "alerts": "1", "at": "3月1日 09:12",
    "kind": "报到", "reason": "对方已退订短信", "fallback": "之后改用 Telegram 联系。", "holiday": "Mid-Autumn Festival",
    "title": "您的权利和义务", "n": "2", "total": "3", "q": "社区矫正期间，您是否还享有劳动的权利？",
    "choices": "A. 享有  B. 不享有", "minutes": "60", "month": "7小时0分钟", "required": "8小时0分钟",
    "missing": "1小时0分钟", "h": "8", "m": "0", "day": "20", "when": "3月1日 09:12", "start": "09:00", "end": "12:00",
    "place": "红果镇敬老院", "hours": "3", "code": "4827", "state": "有效", "why": "转入语音信箱，不算接听",
    "answered": "10:12", "destination": "广州市白云区太和镇", "area": "示例县", "where": "广州市", "distance": "612.4",
    "accuracy": "25", "asked": "3月1日 09:12", "acknowledged": "3月1日 13:05", "channel": "Telegram", "command": "/transfer", "leave": "1", "url": "https://checkin.example.gov.cn/console/link/Xq3V9kz2mB7pLr4TnW8sYc1dHf6gJ0aE", "oldest": "3月1日 13:00", "notes": "2", "reports": "1", "map": "https://www.openstreetmap.org/?mlat=23.13000&mlon=113.26000#map=13/23.13000/113.26000",
    "inside": "范围内", "first": "2027-03-01", "value": "2-30", "max": "30", "days": "5", "note": "外出时间太长",
    "check": "期间暂停位置核查。", "decision": "已批准（暂停位置核查）", "years": "5", "page": "1", "pages": "2",
    "query": "欧阳", "seconds": "40",
}
