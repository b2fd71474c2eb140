"""Tests of the dataset registry: names, option checking and the DatasetInfo record."""
import pytest

from inflor.data import DatasetInfo, build_datasets, dataset_options, list_datasets


def test_list_datasets():
    assert list_datasets() == sorted(
        ["cifar10", "cifar100", "cifar10_dvs", "digits", "imagenet", "npz"])


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="valid choices: .*cifar10.*digits"):
        build_datasets("mnist")


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"'colour'.*valid options: augment, normalize, seed, test_size"):
        build_datasets("digits", colour=True)
    with pytest.raises(ValueError, match="valid options: .*autoaugment.*cutout"):
        build_datasets("cifar10", root="/nonexistent", cutuot=False)


def test_bad_option_value_names_choices(tmp_path):
    with pytest.raises(ValueError, match="interpolation.*'area', 'bilinear', 'nearest'"):
        build_datasets("cifar10_dvs", root=tmp_path, interpolation="cubic")
    with pytest.raises(ValueError, match="test_size"):
        build_datasets("digits", test_size=1.5)


def test_dataset_options_defaults():
    assert dataset_options("cifar10")["cutout"] is None          # None = the paper default
    assert dataset_options("cifar10_dvs")["train_per_class"] == 900
    assert dataset_options("digits") == {"test_size": 0.2, "seed": 0, "normalize": True,
                                         "augment": False}


def test_dataset_info_fields():
    info = DatasetInfo(name="x", num_classes=3, input_shape=(1, 2, 2))
    assert info.timesteps is None and info.class_names is None
