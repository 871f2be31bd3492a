"""The Entra adapter's pure parts: the claims request and what Entra's error responses log."""

from __future__ import annotations

import json

from sanscouture.adapters.entra import _aadsts
from sanscouture.adapters.entra import claims_request


def test_one_context_is_asked_with_value_as_microsofts_guide_shows() -> None:
    assert json.loads(claims_request(("c1",)) or "") == {"id_token": {"acrs": {"essential": True, "value": "c1"}}}


def test_several_contexts_are_asked_with_the_values_array() -> None:
    asked = json.loads(claims_request(("c1", "c7")) or "")
    assert asked == {"id_token": {"acrs": {"essential": True, "values": ["c1", "c7"]}}}


def test_no_context_no_claims_parameter() -> None:
    assert claims_request(()) is None


def test_only_the_aadsts_code_and_trace_id_of_an_entra_error_are_kept_for_the_log() -> None:
    description = ("AADSTS50076: Due to a configuration change made by your administrator, you must use "
                   "multi-factor authentication to access 'claire.martin@chu-exemple.fr'.\r\n"
                   "Trace ID: 5889afab-8ce9-40da-b5fb-c76b4f420000\r\nCorrelation ID: "
                   "215515f1-8f10-4ed6-b4a8-fda77d259dcc\r\nTimestamp: 2026-12-01 10:00:00Z")
    kept = _aadsts({"error": "interaction_required", "error_description": description})
    assert kept == "AADSTS50076 trace 5889afab-8ce9-40da-b5fb-c76b4f420000"
    assert _aadsts({"error": "access_denied"}) == ""
