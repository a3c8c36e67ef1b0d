"""Masking helpers and the access policy."""

import pandas as pd
import pytest

from profile_core.privacy import (
    AccessDenied,
    Policy,
    mask_counterparty,
    mask_frame,
    mask_id_number,
    mask_name,
    mask_phone,
)


def test_masks_keep_only_what_is_allowed():
    assert mask_name("张三丰") == "张**"
    assert mask_name("李四") == "李*"
    assert mask_name(None) == ""
    assert mask_id_number("110105199001011234") == "110***********1234"
    assert mask_id_number("12345") == "*****"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("138-1234-5678") == "138****5678"
    assert mask_counterparty("王芳") == "王*"
    assert mask_counterparty("北京某某科技有限公司") == "北京******公司"
    assert mask_counterparty(float("nan")) == ""


def test_policy_roles():
    mine = {"customer_id": "C1", "rm_id": "RM001", "name": "张三丰", "phone": "13812345678"}
    other = {**mine, "customer_id": "C2", "rm_id": "RM002"}
    rm = Policy("rm", rm_id="RM001")
    assert rm.can_see(mine) and not rm.can_see(other)
    assert rm.mask_identity(mine)["name"] == "张三丰"
    with pytest.raises(AccessDenied) as err:
        rm.check(other)
    assert "C2" in err.value.message("zh") and "C2" in str(err.value)
    for role in ("analyst", "auditor", "admin"):
        policy = Policy(role)
        assert policy.can_see(other)
        assert policy.mask_identity(mine) == {**mine, "name": "张**", "phone": "138****5678"}
    assert Policy("admin", reveal=True).mask_identity(mine)["name"] == "张三丰"
    with pytest.raises(ValueError):
        Policy("rm")
    with pytest.raises(ValueError):
        Policy("analyst", reveal=True)
    with pytest.raises(ValueError):
        Policy("guest")  # type: ignore[arg-type]


def test_mask_frame_filters_and_masks():
    customers = pd.DataFrame({"customer_id": ["C1", "C2"], "rm_id": ["RM001", "RM002"], "name": ["张三丰", "李四"],
                              "id_number": ["110105199001011234", "310115198512120021"],
                              "phone": ["13812345678", "13998765432"]})
    own = mask_frame(customers, Policy("rm", rm_id="RM001"))
    assert own["customer_id"].tolist() == ["C1"] and own["name"].tolist() == ["张三丰"]
    masked = mask_frame(customers, Policy("auditor"))
    assert masked["name"].tolist() == ["张**", "李*"]
    assert masked["phone"].tolist() == ["138****5678", "139****5432"]
    assert masked["id_number"].tolist() == ["110***********1234", "310***********0021"]
    assert customers["name"].tolist() == ["张三丰", "李四"]  # the input is untouched

    txns = pd.DataFrame({"customer_id": ["C1", "C2"], "counterparty": ["王芳颖", "上海方信咨询有限公司"]})
    own_txns = mask_frame(txns, Policy("rm", rm_id="RM001"), owners={"C1": "RM001", "C2": "RM002"})
    assert own_txns["counterparty"].tolist() == ["王**"]  # a third party stays masked even for the RM
    assert mask_frame(txns, Policy("rm", rm_id="RM001")).empty  # no owner known: not the RM's
