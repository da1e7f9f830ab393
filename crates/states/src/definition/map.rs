//! Map (inline): an ItemProcessor machine run once per item, at most MaxConcurrency at once.

use super::fields::Ctx;
use super::{load_machine, Kind, MapSpec, Num};
use crate::error::LoadError;

pub(super) const FIELDS: &[&str] = &[
    "ItemProcessor",
    "Iterator",
    "ItemsPath",
    "ItemSelector",
    "Parameters",
    "MaxConcurrency",
    "MaxConcurrencyPath",
    "InputPath",
    "OutputPath",
    "ResultSelector",
    "ResultPath",
    "Retry",
    "Catch",
    "Next",
    "End",
];

pub(super) fn load(c: &Ctx) -> Result<Kind, LoadError> {
    let obj = c.obj;
    let (field, proc_v) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(_), Some(_)) => {
            return Err(c.err(
                "Iterator",
                "'ItemProcessor' and 'Iterator' are mutually exclusive",
            ))
        }
        (Some(p), None) => ("ItemProcessor", p),
        (None, Some(p)) => ("Iterator", p),
        (None, None) => return Err(c.err("ItemProcessor", "missing")),
    };
    if let Some(cfg) = proc_v.get("ProcessorConfig") {
        let cfg = cfg
            .as_object()
            .ok_or_else(|| c.err("ItemProcessor", "'ProcessorConfig' must be an object"))?;
        for (k, v) in cfg {
            match (k.as_str(), v.as_str()) {
                ("Mode", Some("INLINE")) => {}
                ("Mode", _) => return Err(c.err("ItemProcessor", format!("ProcessorConfig.Mode {v}: only INLINE is supported by this engine"))),
                ("ExecutionType", _) => return Err(c.err("ItemProcessor", "ProcessorConfig.ExecutionType is only valid in DISTRIBUTED mode, which this engine does not support")),
                _ => return Err(c.err("ItemProcessor", format!("unknown ProcessorConfig field '{k}'"))),
            }
        }
    }
    let processor = load_machine(&format!("{}/{field}", c.label), proc_v, true)?;
    // `Parameters` is the older name of `ItemSelector`.
    let item_selector = match (obj.get("ItemSelector"), obj.get("Parameters")) {
        (Some(_), Some(_)) => {
            return Err(c.err(
                "Parameters",
                "'ItemSelector' and 'Parameters' are mutually exclusive",
            ))
        }
        (Some(_), None) => c.template("ItemSelector")?,
        (None, Some(_)) => c.template("Parameters")?,
        (None, None) => None,
    };
    let max_concurrency = c.num_or_path("MaxConcurrency", 0)?.unwrap_or(Num::Fixed(0));
    Ok(Kind::Map(Box::new(MapSpec {
        items_path: c.reference_path("ItemsPath")?,
        item_selector,
        processor,
        max_concurrency,
    })))
}
