"""Every kind's rules, as tables of specs the models accept or refuse with a message.

The same tables run against the real apiserver's CEL rules in
tests/integration/test_crd_validation.py, so Python and CEL cannot drift apart.
"""

from __future__ import annotations

import pytest

from tests.cases import ACCEPTED, REFUSED, TRANSITIONS, Case


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_accepted(case: Case) -> None:
    case.kind.parse_spec(case.object())


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_refused_with_message(case: Case) -> None:
    with pytest.raises(ValueError) as refused:
        case.kind.parse_spec(case.object())
    assert case.message in str(refused.value)


@pytest.mark.parametrize("case", TRANSITIONS, ids=lambda c: c.id)
def test_transition_refused(case: Case) -> None:
    assert case.old is not None
    old = case.kind.spec.model_validate(case.old)
    new = case.kind.spec.model_validate(case.spec)
    assert any(case.message in m for m in new.check_update(old))
    # The same change back to the old spec, or no change at all, is fine.
    assert old.check_update(old) == []


def test_quantities_accept_ints_and_refuse_garbage() -> None:
    from operators.blockstorage.api import VolumeSpec

    assert VolumeSpec.model_validate({"size": 1073741824}).size == "1073741824"
    for bad in ("10GB", "-1Gi", True, 1.5):
        with pytest.raises(ValueError):
            VolumeSpec.model_validate({"size": bad})


def test_output_is_camel_case_and_has_no_nulls() -> None:
    from operators.compute.api import InstanceSpec

    spec = InstanceSpec.model_validate(
        {"flavor": "m1.small", "image": {"name": "cirros"}, "networks": [{"name": "n"}]}
    )
    out = spec.to_k8s()
    assert out["powerState"] == "Running"
    assert "boot_volume" not in out and "bootVolume" not in out
    assert out["networks"] == [{"name": "n"}]
