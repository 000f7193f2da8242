//! The todo list the base skill keeps for one run, and the completion check built on it.

use serde::{Deserialize, Serialize};

/// One todo item. Ids count from 0 in creation order, as in the original base skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    pub id: u64,
    pub title: String,
    pub completed: bool,
}

#[derive(Debug, Default)]
pub(super) struct TodoList {
    todos: Vec<Todo>,
    next_id: u64,
}

impl TodoList {
    /// Adds `new` titles, then marks the ids in `completed`. Returns ids that matched no todo so
    /// the caller can tell the model.
    pub fn update(&mut self, new: Vec<String>, completed: &[u64]) -> Vec<u64> {
        for title in new {
            self.todos.push(Todo {
                id: self.next_id,
                title,
                completed: false,
            });
            self.next_id += 1;
        }
        let mut unknown = Vec::new();
        for &id in completed {
            match self.todos.iter_mut().find(|t| t.id == id) {
                Some(todo) => todo.completed = true,
                None => unknown.push(id),
            }
        }
        unknown
    }

    pub fn clear(&mut self) {
        self.todos.clear();
        self.next_id = 0;
    }

    pub fn all(&self) -> Vec<Todo> {
        self.todos.clone()
    }

    pub fn open(&self) -> Vec<Todo> {
        self.todos
            .iter()
            .filter(|t| !t.completed)
            .cloned()
            .collect()
    }

    pub fn restore(&mut self, todos: Vec<Todo>) {
        // Continue numbering after the highest restored id so ids stay unique.
        self.next_id = todos.iter().map(|t| t.id + 1).max().unwrap_or(0);
        self.todos = todos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_continue_after_restore() {
        let mut list = TodoList::default();
        list.update(vec!["a".into(), "b".into()], &[]);
        let saved = list.all();
        let mut restored = TodoList::default();
        restored.restore(saved);
        restored.update(vec!["c".into()], &[0]);
        let ids: Vec<u64> = restored.all().iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![0, 1, 2]);
        assert_eq!(restored.open().len(), 2);
    }

    #[test]
    fn unknown_ids_are_reported_and_clear_resets_ids() {
        let mut list = TodoList::default();
        assert_eq!(list.update(vec!["a".into()], &[7]), vec![7]);
        list.clear();
        list.update(vec!["b".into()], &[]);
        assert_eq!(list.all()[0].id, 0);
    }
}
