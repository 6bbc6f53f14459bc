import numpy as np
import pandas as pd
import pytest

from napari_causcell.data import ConceptError, ConceptSpace


def obs():
    return pd.DataFrame({
        "age": ["24wk", "4wk", "90wk", "4wk"],
        "ct": pd.Categorical(["B", "A", "A", "B"], categories=["B", "A", "Z"]),
        "one": ["x"] * 4,
        "cont": np.linspace(0, 1, 4),
    })


def test_codes_fixed_and_natural_order():
    space = ConceptSpace.from_obs(obs(), ["age", "ct"])
    assert space.categories["age"] == ["4wk", "24wk", "90wk"]  # numeric prefix order
    assert space.categories["ct"] == ["B", "A"]  # categorical order, unused level dropped
    codes = space.encode(obs())
    assert codes[:, 0].tolist() == [1, 0, 2, 0]
    # a subset in another order keeps the same codes
    sub = obs().iloc[[2, 0]]
    assert space.encode(sub)[:, 0].tolist() == [2, 1]
    again = ConceptSpace.from_dict(space.to_dict())
    assert again.encode(obs()).tolist() == codes.tolist()


def test_bad_concepts():
    with pytest.raises(ConceptError, match="'tissue' is not in obs"):
        ConceptSpace.from_obs(obs(), ["tissue"])
    with pytest.raises(ConceptError, match="single level"):
        ConceptSpace.from_obs(obs(), ["one"])
    with pytest.raises(ConceptError, match="reserved"):
        ConceptSpace.from_obs(obs().rename(columns={"age": "u"}), ["u"])
    o = obs()
    o.loc[0, "age"] = None
    with pytest.raises(ConceptError, match="missing labels"):
        ConceptSpace.from_obs(o, ["age"])
    big = pd.DataFrame({"x": np.random.default_rng(0).normal(size=200)})
    with pytest.raises(ConceptError, match="continuous"):
        ConceptSpace.from_obs(big, ["x"])


def test_unseen_label_is_a_clear_error():
    space = ConceptSpace.from_obs(obs(), ["age"])
    other = pd.DataFrame({"age": ["4wk", "120wk"]})
    with pytest.raises(ConceptError, match=r"never saw: \['120wk'\]"):
        space.encode(other)
    with pytest.raises(ConceptError, match="not a label"):
        space.code("age", "1yr")
    assert space.code("age", "90wk") == 2
