use orm::{Model, ModelEvents, Obj, Session};

fn now_ish() -> i64 {
    42
}

#[derive(Clone, Model)]
#[orm(events)]
struct Task {
    #[orm(auto_increment)]
    id: Option<i64>,
    #[orm(default = String::from("open"))]
    status: Option<String>,
    #[orm(default = now_ish(), on_update = now_ish())]
    touched: Option<i64>,
    #[orm(server_default = "CURRENT_TIMESTAMP", server_on_update = "CURRENT_TIMESTAMP")]
    updated_at: Option<orm::value::DateTime>,
}

impl ModelEvents for Task {
    fn before_insert(_: &Session, obj: &Obj<Self>) -> orm::Result<()> {
        obj.write()?.status = Some("new".into());
        Ok(())
    }
}

fn main() {
    let columns = Task::table().columns;
    assert_eq!(columns[1].default.map(|f| f()), Some(orm::Value::Text("open".into())));
    assert!(columns[2].on_update.is_some());
    assert_eq!(columns[3].server_on_update, Some("CURRENT_TIMESTAMP"));
    assert!(<Task as Model>::EVENTS);
}
