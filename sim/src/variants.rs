//! Where the reference and the public evidence leave an answer open, the plausible answers the
//! simulator can give (`docs/platform-variants.md` lists each with where it was seen). The
//! default is the answer the reference prefers; `--platform-variants SEED` picks one answer per
//! point from the seed, so that a handful of seeds covers every answer.

use serde::{Deserialize, Serialize};

/// A window with no record, on the order and refund lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EmptyWindow {
    /// `cursor: "nomore"` and an empty list (the documented end marker).
    #[default]
    Nomore,
    /// `cursor: ""` and an empty list.
    EmptyCursor,
    /// `data: null`.
    NullData,
}

/// What `data` an error answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ErrorData {
    /// None at all (most captured errors).
    #[default]
    Absent,
    /// An empty skeleton of the method's page: `cursor: ""`, an empty list, `pageSize: 0`.
    Skeleton,
}

/// The `openId` of push envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PushOpenId {
    /// The token's `open_id`.
    #[default]
    TokenOpenId,
    /// Another id of the same merchant, in another format, known nowhere else: only `userId`
    /// (the seller id) routes the message.
    Unrelated,
}

/// Which verbs `/oauth2/refresh_token` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RefreshVerbs {
    #[default]
    Both,
    /// GET with a query (what the platform's demo and the Go SDK send).
    GetOnly,
    /// A POST form (what the documentation says).
    PostOnly,
}

/// What a lookup of one deleted item by `kwaiItemId` answers on the item list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DeletedItemLookup {
    /// An empty page.
    #[default]
    Absent,
    /// A business error.
    BusinessError,
    /// The item with `itemStatus` 2 (deleted by the seller).
    DeletedBySeller,
    /// The item with `itemStatus` 3 (deleted by the platform).
    DeletedByPlatform,
}

/// The JSON type of `orderLogisticsInfo[].expressCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExpressCode {
    #[default]
    Number,
    /// A numeric string.
    Text,
}

/// How many packages a shipped order has in `orderLogisticsInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Packages {
    #[default]
    One,
    /// Some orders ship in two or three packages.
    Several,
}

/// The codes for a window the order list refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BadWindowCodes {
    /// The refund list's codes of 返回码说明 (300003, 300004, 300005).
    #[default]
    RefundCodes,
    /// `code 807000`, `sub_code 2001`, `endTime无效`, as seen in public code.
    Business2001,
}

/// How order ids (oids) are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OrderIds {
    /// The order's date in Beijing time (two digits of the year, three of the day of the year)
    /// and eleven more digits: the reference's observed oid `2607602240240301` was created on
    /// 2026-03-17, day 76 of 2026.
    #[default]
    Dated,
    /// Uniformly random 16-digit ids.
    Random,
}

/// One answer for each open point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlatformVariants {
    pub empty_window: EmptyWindow,
    pub error_data: ErrorData,
    pub push_open_id: PushOpenId,
    pub refresh_verbs: RefreshVerbs,
    pub deleted_item: DeletedItemLookup,
    pub express_code: ExpressCode,
    pub packages: Packages,
    pub bad_window: BadWindowCodes,
    pub order_ids: OrderIds,
}

impl PlatformVariants {
    /// The answers of seed `seed`: point `i` takes its answer number `(seed + i) mod n`, so any
    /// four consecutive seeds give every answer of every point at least once.
    pub fn from_seed(seed: u64) -> Self {
        let pick = |i: u64, n: u64| ((seed.wrapping_add(i)) % n) as usize;
        Self {
            empty_window: [
                EmptyWindow::Nomore,
                EmptyWindow::EmptyCursor,
                EmptyWindow::NullData,
            ][pick(0, 3)],
            error_data: [ErrorData::Absent, ErrorData::Skeleton][pick(1, 2)],
            push_open_id: [PushOpenId::TokenOpenId, PushOpenId::Unrelated][pick(2, 2)],
            refresh_verbs: [
                RefreshVerbs::Both,
                RefreshVerbs::GetOnly,
                RefreshVerbs::PostOnly,
            ][pick(3, 3)],
            deleted_item: [
                DeletedItemLookup::Absent,
                DeletedItemLookup::BusinessError,
                DeletedItemLookup::DeletedBySeller,
                DeletedItemLookup::DeletedByPlatform,
            ][pick(4, 4)],
            express_code: [ExpressCode::Number, ExpressCode::Text][pick(5, 2)],
            packages: [Packages::One, Packages::Several][pick(6, 2)],
            bad_window: [BadWindowCodes::RefundCodes, BadWindowCodes::Business2001][pick(7, 2)],
            order_ids: [OrderIds::Dated, OrderIds::Random][pick(8, 2)],
        }
    }
}

impl PlatformVariants {
    /// Whether order documents are served in another shape than the one stored.
    pub fn reshapes_orders(&self) -> bool {
        self.express_code == ExpressCode::Text || self.packages == Packages::Several
    }

    /// An order document (list or detail view) as this platform serves it: with a second
    /// package for one order in three that has one, and carrier codes as text, as chosen.
    pub fn shape_order(&self, doc: &mut serde_json::Value) {
        let text = self.express_code == ExpressCode::Text;
        let oid = doc["orderBaseInfo"]["oid"].as_i64().unwrap_or(0);
        let several = self.packages == Packages::Several && oid % 3 == 0;
        reshape_packages(doc.get_mut("orderLogisticsInfo"), several, text);
        if let Some(serde_json::Value::Array(gifts)) = doc.get_mut("subOrderInfo") {
            for gift in gifts {
                reshape_packages(gift.get_mut("subOrderLogisticsInfo"), false, text);
            }
        }
    }

    /// [`Self::shape_order`] on a stored document's JSON text (unchanged when nothing is reshaped).
    pub fn shaped_order(&self, json: &str) -> String {
        if !self.reshapes_orders() {
            return json.to_string();
        }
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(mut doc) => {
                self.shape_order(&mut doc);
                doc.to_string()
            }
            Err(_) => json.to_string(),
        }
    }
}

fn reshape_packages(list: Option<&mut serde_json::Value>, several: bool, text: bool) {
    let Some(serde_json::Value::Array(packages)) = list else {
        return;
    };
    if several && packages.len() == 1 {
        let mut second = packages[0].clone();
        let number = second["expressNo"].as_str().unwrap_or_default().to_string();
        second["expressNo"] = serde_json::json!(format!("{number}2"));
        if let Some(id) = second["logisticsId"].as_i64() {
            second["logisticsId"] = serde_json::json!(id + 1);
        }
        packages.push(second);
    }
    if text {
        for package in packages.iter_mut() {
            if let Some(code) = package["expressCode"].as_i64() {
                package["expressCode"] = serde_json::json!(code.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn four_seeds_give_every_answer() {
        let all: Vec<PlatformVariants> = (0..4).map(PlatformVariants::from_seed).collect();
        let count = |f: &dyn Fn(&PlatformVariants) -> String| {
            all.iter().map(f).collect::<HashSet<_>>().len()
        };
        assert_eq!(count(&|v| format!("{:?}", v.empty_window)), 3);
        assert_eq!(count(&|v| format!("{:?}", v.error_data)), 2);
        assert_eq!(count(&|v| format!("{:?}", v.push_open_id)), 2);
        assert_eq!(count(&|v| format!("{:?}", v.refresh_verbs)), 3);
        assert_eq!(count(&|v| format!("{:?}", v.deleted_item)), 4);
        assert_eq!(count(&|v| format!("{:?}", v.express_code)), 2);
        assert_eq!(count(&|v| format!("{:?}", v.packages)), 2);
        assert_eq!(count(&|v| format!("{:?}", v.bad_window)), 2);
        assert_eq!(count(&|v| format!("{:?}", v.order_ids)), 2);
    }
}
