// @generated automatically by Diesel CLI.

diesel::table! {
    calendar_feeds (id) {
        id -> Uuid,
        user_id -> Text,
        secret_hash -> Bytea,
        created_at -> Timestamptz,
        content_hash -> Nullable<Bytea>,
        content_changed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    conversations (id) {
        id -> Uuid,
        user_id -> Text,
        title -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_message_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    erased_users (id) {
        id -> Text,
        erased_at -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Uuid,
        user_id -> Text,
        title -> Text,
        description -> Nullable<Text>,
        location -> Nullable<Text>,
        start_at -> Timestamptz,
        end_at -> Timestamptz,
        is_all_day -> Bool,
        recurrence -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        alerts -> Array<Int4>,
        timezone -> Nullable<Text>,
        exdates -> Array<Timestamptz>,
        ical_uid -> Nullable<Text>,
    }
}

diesel::table! {
    memories (id) {
        id -> Uuid,
        user_id -> Text,
        content -> Text,
        kind -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        user_id -> Text,
        role -> Text,
        content -> Text,
        tool_calls -> Jsonb,
        client_message_id -> Nullable<Text>,
        created_at -> Timestamptz,
        reply_to -> Nullable<Uuid>,
    }
}

diesel::table! {
    push_deliveries (reminder_id, subscription_id) {
        reminder_id -> Uuid,
        subscription_id -> Uuid,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        expires_at -> Timestamptz,
        last_status -> Nullable<Int4>,
        done_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    push_subscriptions (id) {
        id -> Uuid,
        user_id -> Text,
        endpoint -> Text,
        p256dh -> Text,
        auth -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    reminders (id) {
        id -> Uuid,
        user_id -> Text,
        text -> Text,
        due_at -> Timestamptz,
        task_id -> Nullable<Uuid>,
        event_id -> Nullable<Uuid>,
        occurrence_at -> Nullable<Timestamptz>,
        alert_minutes -> Nullable<Int4>,
        conversation_id -> Nullable<Uuid>,
        status -> Text,
        fired_at -> Nullable<Timestamptz>,
        fired_late -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        kind -> Text,
    }
}

diesel::table! {
    tasks (id) {
        id -> Uuid,
        user_id -> Text,
        title -> Text,
        description -> Nullable<Text>,
        project -> Nullable<Text>,
        status -> Text,
        priority -> Nullable<Text>,
        due_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        created_at -> Timestamptz,
        timezone -> Nullable<Text>,
        agenda_at -> Nullable<Time>,
    }
}

diesel::table! {
    vector_outbox (id) {
        id -> Int8,
        user_id -> Text,
        entity_kind -> Text,
        entity_id -> Nullable<Uuid>,
        op -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (source, id) {
        source -> Text,
        id -> Text,
        received_at -> Timestamptz,
    }
}

diesel::joinable!(calendar_feeds -> users (user_id));
diesel::joinable!(conversations -> users (user_id));
diesel::joinable!(events -> users (user_id));
diesel::joinable!(memories -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(messages -> users (user_id));
diesel::joinable!(push_deliveries -> push_subscriptions (subscription_id));
diesel::joinable!(push_deliveries -> reminders (reminder_id));
diesel::joinable!(push_subscriptions -> users (user_id));
diesel::joinable!(reminders -> conversations (conversation_id));
diesel::joinable!(reminders -> events (event_id));
diesel::joinable!(reminders -> tasks (task_id));
diesel::joinable!(reminders -> users (user_id));
diesel::joinable!(tasks -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    calendar_feeds,
    conversations,
    erased_users,
    events,
    memories,
    messages,
    push_deliveries,
    push_subscriptions,
    reminders,
    tasks,
    users,
    vector_outbox,
    webhook_deliveries,
);
