//! Fixed tables the generator draws from: plausible shop goods, shop and buyer name parts,
//! regions, couriers, refund reasons. Everything here is invented or public administrative data;
//! no real person's data. Courier and category codes are illustrative, not the platform's.

/// A kind of product a shop sells; items are variants of these.
pub struct Product {
    pub title: &'static str,
    pub category_id: i64,
    pub category: &'static str,
    /// Typical SKU price range in fen.
    pub price_fen: (i64, i64),
    /// Up to two spec dimensions; SKUs are combinations of their values.
    pub props: &'static [(&'static str, &'static [&'static str])],
}

const COLOURS: &[&str] = &["白色", "黑色", "灰色", "藏青色", "杏色"];
const SIZES: &[&str] = &["S", "M", "L", "XL", "XXL"];

#[rustfmt::skip]
pub const PRODUCTS: &[Product] = &[
    Product { title: "纯棉短袖T恤男夏季宽松百搭", category_id: 1101, category: "男装/T恤", price_fen: (3_900, 8_900), props: &[("颜色", COLOURS), ("尺码", SIZES)] },
    Product { title: "冰丝阔腿裤女高腰垂感", category_id: 1102, category: "女装/休闲裤", price_fen: (4_900, 9_900), props: &[("颜色", &["黑色", "杏色", "灰色"]), ("尺码", SIZES)] },
    Product { title: "加绒连帽卫衣男秋冬", category_id: 1103, category: "男装/卫衣", price_fen: (6_900, 15_900), props: &[("颜色", COLOURS), ("尺码", SIZES)] },
    Product { title: "法式碎花连衣裙收腰显瘦", category_id: 1104, category: "女装/连衣裙", price_fen: (8_900, 19_900), props: &[("颜色", &["蓝色碎花", "黄色碎花", "黑色碎花"]), ("尺码", &["S", "M", "L", "XL"])] },
    Product { title: "儿童运动鞋透气网面", category_id: 1201, category: "童鞋/运动鞋", price_fen: (5_900, 12_900), props: &[("颜色", &["白粉", "白蓝", "黑色"]), ("尺码", &["28", "30", "32", "34", "36"])] },
    Product { title: "厚底老爹鞋女百搭增高", category_id: 1202, category: "女鞋/休闲鞋", price_fen: (7_900, 16_900), props: &[("颜色", &["米白", "黑色", "粉色"]), ("尺码", &["35", "36", "37", "38", "39"])] },
    Product { title: "四川麻辣牛肉干手撕风干", category_id: 2101, category: "零食/肉干肉脯", price_fen: (2_990, 8_990), props: &[("口味", &["麻辣", "五香", "孜然"]), ("规格", &["100g", "250g", "500g"])] },
    Product { title: "每日坚果混合装孕妇零食", category_id: 2102, category: "零食/坚果炒货", price_fen: (3_990, 9_990), props: &[("规格", &["15包", "30包", "60包"])] },
    Product { title: "云南小粒咖啡速溶无蔗糖", category_id: 2103, category: "冲饮/咖啡", price_fen: (1_990, 5_990), props: &[("规格", &["20条", "40条", "100条"])] },
    Product { title: "柳州螺蛳粉正宗袋装", category_id: 2104, category: "方便速食/螺蛳粉", price_fen: (1_990, 6_990), props: &[("规格", &["3袋", "5袋", "10袋"])] },
    Product { title: "东北五常大米新米", category_id: 2105, category: "粮油/大米", price_fen: (3_990, 12_900), props: &[("规格", &["5kg", "10kg"])] },
    Product { title: "赣南脐橙新鲜水果当季", category_id: 2201, category: "水果/柑橘", price_fen: (2_490, 6_990), props: &[("规格", &["5斤中果", "5斤大果", "10斤大果"])] },
    Product { title: "烟台红富士苹果脆甜", category_id: 2202, category: "水果/苹果", price_fen: (2_990, 7_990), props: &[("规格", &["5斤装", "10斤装"]), ("果径", &["75mm", "80mm", "85mm"])] },
    Product { title: "玻尿酸补水保湿面膜", category_id: 3101, category: "美妆/面膜", price_fen: (2_990, 8_990), props: &[("规格", &["10片", "20片", "30片"])] },
    Product { title: "氨基酸洗面奶温和控油", category_id: 3102, category: "美妆/洁面", price_fen: (2_990, 6_990), props: &[("规格", &["100g", "150g", "100g*2支"])] },
    Product { title: "丝绒雾面口红持久不脱色", category_id: 3103, category: "美妆/唇膏口红", price_fen: (3_900, 12_900), props: &[("色号", &["#01正红", "#02豆沙", "#03枫叶红", "#04奶茶"])] },
    Product { title: "电动牙刷成人声波软毛", category_id: 3201, category: "个护/电动牙刷", price_fen: (6_900, 19_900), props: &[("颜色", &["白色", "粉色", "黑色"])] },
    Product { title: "洗衣凝珠持久留香", category_id: 4101, category: "家清/洗衣凝珠", price_fen: (2_990, 7_990), props: &[("规格", &["30颗", "52颗", "100颗"])] },
    Product { title: "原木抽纸家用实惠装", category_id: 4102, category: "家清/纸品", price_fen: (1_990, 5_990), props: &[("规格", &["24包", "36包", "48包"])] },
    Product { title: "麦饭石不粘锅炒锅家用", category_id: 4201, category: "厨具/炒锅", price_fen: (7_900, 19_900), props: &[("尺寸", &["28cm", "30cm", "32cm"]), ("款式", &["带盖", "不带盖"])] },
    Product { title: "316不锈钢保温杯大容量", category_id: 4202, category: "餐具/保温杯", price_fen: (3_900, 9_900), props: &[("颜色", &["白色", "黑色", "奶茶色"]), ("容量", &["350ml", "500ml"])] },
    Product { title: "纯棉四件套床单被罩", category_id: 4301, category: "家纺/床品套件", price_fen: (9_900, 29_900), props: &[("颜色", &["浅灰", "米黄", "雾蓝"]), ("尺寸", &["1.5m床", "1.8m床"])] },
    Product { title: "泰国天然乳胶枕护颈", category_id: 4302, category: "家纺/枕头", price_fen: (5_900, 15_900), props: &[("规格", &["单只装", "一对装"])] },
    Product { title: "大号收纳箱衣物整理箱", category_id: 4401, category: "家居/收纳箱", price_fen: (2_990, 8_990), props: &[("规格", &["中号", "大号"]), ("数量", &["1个", "3个"])] },
    Product { title: "无线蓝牙耳机降噪长续航", category_id: 5101, category: "数码/耳机", price_fen: (5_900, 19_900), props: &[("颜色", &["白色", "黑色"])] },
    Product { title: "防摔手机壳全包镜头", category_id: 5102, category: "手机配件/手机壳", price_fen: (990, 3_990), props: &[("型号", &["iPhone 15", "iPhone 15 Pro", "华为 Mate 60", "小米 14"]), ("颜色", &["透明", "黑色"])] },
    Product { title: "20000毫安充电宝快充", category_id: 5103, category: "数码/移动电源", price_fen: (4_900, 12_900), props: &[("容量", &["10000mAh", "20000mAh"]), ("颜色", &["白色", "黑色"])] },
    Product { title: "全价成猫粮营养增肥", category_id: 6101, category: "宠物/猫主粮", price_fen: (3_990, 19_900), props: &[("规格", &["1.5kg", "5kg", "10kg"])] },
    Product { title: "儿童绘本睡前故事书", category_id: 7101, category: "图书/绘本", price_fen: (2_990, 9_900), props: &[("规格", &["全10册", "全20册"])] },
    Product { title: "加厚瑜伽垫防滑健身", category_id: 8101, category: "运动/瑜伽垫", price_fen: (3_990, 9_900), props: &[("颜色", &["紫色", "蓝色", "粉色"]), ("厚度", &["6mm", "10mm"])] },
];

pub const TITLE_PREFIXES: &[&str] = &[
    "",
    "",
    "2024新款",
    "【主播推荐】",
    "工厂直发 ",
    "爆款 ",
    "【官方正品】",
    "限时特惠 ",
];
pub const TITLE_SUFFIXES: &[&str] = &["", "", " 包邮", " 买二送一", " 送运费险", " 现货速发"];

pub const SHOP_NAME_HEADS: &[&str] = &[
    "小鹿", "阿强", "老王", "甜甜", "大宇", "晴天", "山里", "东北", "江南", "阿美", "胖虎", "小七",
];
pub const SHOP_NAME_BODIES: &[&str] = &[
    "好物",
    "优选",
    "生活馆",
    "严选",
    "百货",
    "农家",
    "美妆",
    "服饰",
];
pub const SHOP_NAME_TAILS: &[&str] = &["小店", "旗舰店", "专营店", "的店"];

pub const DISTRIBUTOR_NAMES: &[&str] = &[
    "主播小鹿",
    "阿强好物分享",
    "甜甜爱种草",
    "大宇测评",
    "晴天穿搭",
    "胖虎家居",
    "江南小厨",
    "阿美美妆",
];

pub const BUYER_NICK_HEADS: &[&str] = &[
    "快乐的",
    "追风的",
    "安静的",
    "爱笑的",
    "努力的",
    "慵懒的",
    "勇敢的",
];
pub const BUYER_NICK_TAILS: &[&str] = &["小猫", "少年", "橘子", "星星", "大白", "奶茶", "旅人"];
pub const SURNAMES: &[&str] = &[
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙",
];
pub const MOBILE_PREFIXES: &[&str] = &["138", "139", "150", "158", "186", "177", "199"];

/// (province, code, city, code, district, code, town, code).
pub type Region = (
    &'static str,
    i64,
    &'static str,
    i64,
    &'static str,
    i64,
    &'static str,
    i64,
);

#[rustfmt::skip]
pub const REGIONS: &[Region] = &[
    ("浙江省", 330000, "杭州市", 330100, "西湖区", 330106, "西溪街道", 330106004),
    ("广东省", 440000, "广州市", 440100, "天河区", 440106, "石牌街道", 440106005),
    ("广东省", 440000, "深圳市", 440300, "南山区", 440305, "粤海街道", 440305007),
    ("北京市", 110000, "北京市", 110100, "朝阳区", 110105, "望京街道", 110105036),
    ("上海市", 310000, "上海市", 310100, "浦东新区", 310115, "花木街道", 310115007),
    ("江苏省", 320000, "南京市", 320100, "鼓楼区", 320106, "宁海路街道", 320106002),
    ("四川省", 510000, "成都市", 510100, "武侯区", 510107, "玉林街道", 510107002),
    ("湖北省", 420000, "武汉市", 420100, "洪山区", 420111, "关山街道", 420111004),
    ("山东省", 370000, "济南市", 370100, "历下区", 370102, "泉城路街道", 370102001),
    ("河南省", 410000, "郑州市", 410100, "金水区", 410105, "经八路街道", 410105001),
    ("黑龙江省", 230000, "哈尔滨市", 230100, "南岗区", 230103, "花园街道", 230103002),
    ("陕西省", 610000, "西安市", 610100, "雁塔区", 610113, "小寨路街道", 610113001),
];

/// (expressCode, waybill prefix, digits after the prefix).
pub const COURIERS: &[(i32, &str, usize)] = &[
    (1, "SF", 13),
    (4, "YT", 13),
    (7, "75", 12),
    (8, "43", 13),
    (10, "JT", 13),
    (12, "77", 13),
];

/// (payType, payChannel).
pub const PAYMENTS: &[(i32, &str)] = &[
    (1, "微信支付"),
    (1, "微信支付"),
    (2, "支付宝"),
    (2, "支付宝"),
    (88, "支付宝先用后付"),
];

/// Buyer messages; most orders have none.
pub const REMARKS: &[&str] = &[
    "",
    "",
    "",
    "",
    "",
    "",
    "请尽快发货",
    "麻烦发顺丰",
    "送人的，不要放价格单",
    "周末配送",
];

/// (refundReason, refundReasonDesc), for refunds before shipping.
pub const REASONS_UNSHIPPED: &[(i32, &str)] =
    &[(1, "不想要了"), (2, "拍错/多拍"), (5, "未按约定时间发货")];
/// (refundReason, refundReasonDesc), for refunds after shipping.
pub const REASONS_SHIPPED: &[(i32, &str)] = &[
    (1, "不想要了"),
    (3, "商品质量问题"),
    (4, "尺码不合适"),
    (6, "商品与描述不符"),
    (7, "收到商品破损"),
    (8, "少件/漏发"),
    (9, "七天无理由退换货"),
];
pub const REFUND_DESCS: &[&str] = &[
    "",
    "",
    "麻烦尽快处理",
    "和图片不一样",
    "买多了",
    "家里人已经买了",
];

/// (carrierType, whether it has a carrierId): short video, live room, live replay, order page,
/// shop page, search. Live rooms dominate.
pub const CARRIERS: &[(i32, bool)] = &[
    (2, true),
    (2, true),
    (2, true),
    (1, true),
    (7, true),
    (311, false),
    (3, false),
    (10008, false),
];
