"""The second stand-in itself: it reads what was sent, refuses what was not sent whole, and
answers in the service's shapes."""

from __future__ import annotations

import json
import re

import pytest
from werkzeug.test import Client

from pipeline.content.body import Body
from pipeline.transport.multipart import build_form
from tests.multipart_readers import read_upload, serialised
from tests.thirdparty import DEMO_KEY, UPLOAD_PATH, ThirdParty

DATA = b"RIFF" + bytes(range(256)) * 40


def upload_body(purpose: str = "song", name: str = "a.wav") -> tuple[bytes, str]:
    return serialised(build_form(purpose, Body(size=len(DATA), data=DATA), name, "audio/wav"))


def post(app: ThirdParty, body: bytes, content_type: str, key: str = DEMO_KEY) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    resp = Client(app).post(UPLOAD_PATH, data=body, headers=headers)
    return resp.status_code, resp.get_data(as_text=True)


def test_a_body_cut_before_its_closing_delimiter_is_refused() -> None:
    body, content_type = upload_body()
    assert body.endswith(b"--\r\n")  # the CRLF after the closing delimiter is optional
    read_upload(body[:-2], content_type)
    for cut in (3, 10, len(DATA) // 2, len(body) - 100):
        with pytest.raises(ValueError):
            read_upload(body[:-cut], content_type)


def test_the_readers_see_the_purpose_and_the_file_bytes_as_sent() -> None:
    body, content_type = upload_body(name="x.wav")
    purpose, file = read_upload(body, content_type)
    assert (purpose["name"], purpose["value"], purpose["filename_werkzeug"]) == (
        "purpose",
        "song",
        None,
    )
    assert (file["filename_werkzeug"], file["filename_multipart"]) == ("x.wav", "x.wav")
    assert file["size"] == len(DATA) and file["bytes_agree"]
    assert file["disposition"] == 'form-data; name="file"; filename="x.wav"'


@pytest.mark.parametrize(
    ("purpose", "ids"),
    [("song", {"voice_id", "instrumental_id"}), ("voice", {"voice_id"}),
     ("instrumental", {"instrumental_id"})],
)  # fmt: skip
def test_an_upload_is_answered_with_ids_in_the_real_shape(purpose: str, ids: set[str]) -> None:
    app = ThirdParty(key=DEMO_KEY)
    status, text = post(app, *upload_body(purpose))
    answer = json.loads(text)
    assert status == 200 and answer["base_resp"] == {"status_code": 0, "status_msg": "success"}
    assert {k for k in answer if k.endswith("_id") and k != "trace_id"} == ids
    shape = {
        "voice_id": r"vocal-\d{14}-[0-9a-f]{8}",
        "instrumental_id": r"instrumental-\d{14}-[0-9a-f]{8}",
    }
    for key in ids:
        assert re.fullmatch(shape[key], answer[key])
    assert re.fullmatch(r"[0-9a-f]{32}", answer["trace_id"])
    assert app.requests[0]["outcome"] == "ok"


def test_a_wrong_key_is_401_and_a_bad_purpose_is_base_resp_2013() -> None:
    app = ThirdParty(key=DEMO_KEY)
    assert post(app, *upload_body(), key="wrong")[0] == 401
    status, text = post(app, *upload_body("podcast"))
    assert status == 200 and json.loads(text)["base_resp"]["status_code"] == 2013


@pytest.mark.parametrize(
    ("mode", "status", "content_type", "title"),
    [
        ("cdn-403", 403, "text/html", "Attention Required! | Cloudflare"),
        ("nginx-413", 413, "text/html", "413 Request Entity Too Large"),
        ("gateway-502", 502, "text/html", "502 Bad Gateway"),
        ("no-credits", 403, "application/json", None),
    ],
)
def test_each_mode_answers_as_what_stands_in_front_of_the_service(
    mode: str, status: int, content_type: str, title: str | None
) -> None:
    app = ThirdParty(key=DEMO_KEY, mode=mode)
    body, form_type = upload_body()
    resp = Client(app).post(
        UPLOAD_PATH,
        data=body,
        headers={"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": form_type},
    )
    assert (resp.status_code, resp.mimetype) == (status, content_type)
    text = resp.get_data(as_text=True)
    if title is not None:
        assert f"<title>{title}</title>" in text
    else:
        assert "credits" in json.loads(text)["message"]
